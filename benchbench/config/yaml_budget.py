"""YAML for files a user hands us, with a budget on what aliases may expand to.

``yaml.safe_load`` shares an aliased node instead of copying it, but everything after it (schema
validation, hashing, ``model_dump``) walks the expanded tree: nine nested aliases of nine items
each (the "billion laughs") are 387 million nodes to walk. The composed graph is measured before
anything is built from it; a document over the budget, or one that refers to itself, is refused.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_EXPANDED_NODES = 100_000  # a scenario is a few hundred nodes; a long file list a few thousand


class YAMLTooLarge(yaml.YAMLError):
    """Aliases that expand past the budget, or refer to themselves."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` that refuses documents whose aliases expand past ``MAX_EXPANDED_NODES``."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, set())
        return loader.construct_document(node)
    except RecursionError:
        raise YAMLTooLarge("nested too deeply") from None
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Nodes in the tree ``node`` stands for once every alias is expanded (memoised per shared node)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise YAMLTooLarge("an alias refers to the node that contains it")
    open_nodes.add(key)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes, open_nodes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes, open_nodes) + _expanded_size(v, sizes, open_nodes) for k, v in node.value)
    open_nodes.discard(key)
    if size > MAX_EXPANDED_NODES:
        raise YAMLTooLarge(f"aliases expand to over {MAX_EXPANDED_NODES:,} values; write the values out or use fewer aliases")
    sizes[key] = size
    return size
