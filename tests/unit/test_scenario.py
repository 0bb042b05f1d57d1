"""Scenario files: built-ins load, bad documents fail with one line naming the file and field."""

import json
import os

import pytest

from benchbench.errors import BenchError, ScenarioError
from benchbench.config.scenario import builtin_names, load_scenario

VALID = """\
name: mine
images: {synthetic: {sizes: [[640, 480]]}}
prompt: {turns: [{user: "<image>\\nWhat is this?"}]}
requests: 2
max_new_tokens: 8
"""


def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_every_builtin_loads_and_10x_image_is_ten_requests_after_warmup_at_six_tiles():
    assert {"10x-image", "tiles-sweep", "multi-image", "multi-turn"} <= set(builtin_names())
    for name in builtin_names():
        load_scenario(name)
    scenario = load_scenario("10x-image")
    assert scenario.requests == 10 and scenario.warmup >= 1 and scenario.tiling.max_num == 6
    assert len({w / h for w, h in scenario.images.synthetic.sizes}) > 3


def test_valid_file_loads_with_defaults(tmp_path):
    scenario = load_scenario(write(tmp_path, VALID))
    assert scenario.warmup == 1 and scenario.decoding == "greedy" and scenario.backends[0].kind == "transformers"


def test_unknown_builtin_suggests_close_name():
    with pytest.raises(ScenarioError, match="did you mean '10x-image'"):
        load_scenario("10ximage")


def test_missing_file_names_the_path():
    with pytest.raises(ScenarioError, match="scenario file nowhere/x.yaml: not found"):
        load_scenario("nowhere/x.yaml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (VALID + "colour: blue\n", "field 'colour': unknown field"),
        (VALID.replace("max_new_tokens: 8", "max_new_tokens: 0"), "field 'max_new_tokens'"),
        (VALID.replace("requests: 2", "requests: -1"), "field 'requests'"),
        (VALID.replace("requests: 2", "requests: lots"), "field 'requests'"),
        (VALID.replace("requests: 2\n", ""), "field 'requests': required field is missing"),
        (VALID.replace("<image>", ""), "placeholder"),
        (VALID + "tiling: {max_num: 2, min_num: 3}\n", "min_num 3"),
        (VALID + "backends: [{kind: transformers}, {kind: transformers}]\n", "distinct 'label'"),
        ("- just\n- a list\n", "top level must be a mapping"),
        (VALID.replace("[[640, 480]]", "[[1, 480]]"), "between 16 and 8192"),
        (VALID.replace("requests: 2", "requests: true"), "field 'requests': Input should be a valid integer"),
        (VALID.replace("requests: 2", "requests: 2.5"), "field 'requests'"),
        (VALID + "timeouts: {request_s: .inf}\n", "field 'timeouts.request_s': Input should be a finite number"),
        (VALID + "timeouts: {request_s: .nan}\n", "field 'timeouts.request_s': Input should be a finite number"),
        (VALID + "timeouts: {request_s: 1e300}\n", "field 'timeouts.request_s'"),
    ],
)
def test_invalid_documents_fail_naming_file_and_field(tmp_path, change, message):
    path = write(tmp_path, change)
    with pytest.raises(ScenarioError, match=message) as raised:
        load_scenario(path)
    assert path in str(raised.value) and "\n" not in str(raised.value)


def test_malformed_yaml_names_the_line(tmp_path):
    with pytest.raises(ScenarioError, match=r"malformed YAML at line \d"):
        load_scenario(write(tmp_path, "name: x\nrequests: [1,\n"))


def test_overrides_are_validated_like_the_file():
    with pytest.raises(ScenarioError, match="max_new_tokens"):
        load_scenario("10x-image").with_overrides(max_new_tokens=0)
    assert load_scenario("10x-image").with_overrides(requests=3, warmup=None).requests == 3


def test_image_files_resolve_relative_to_the_scenario(tmp_path):
    text = VALID.replace("{synthetic: {sizes: [[640, 480]]}}", "{files: [pics/a.png]}")
    scenario = load_scenario(write(tmp_path, text))
    assert scenario.images.files == [str(tmp_path / "pics/a.png")]


@pytest.mark.parametrize("label", ["a/b", "../../x", "a\x00b", "x" * 300, ".hidden", "", "tab\there", "é"])
def test_backend_labels_that_cannot_be_file_names_are_refused_when_read(tmp_path, label):
    text = VALID + f"backends: [{{kind: transformers, label: {json.dumps(label)}}}]\n"
    with pytest.raises(ScenarioError, match="field 'backends.0.label': .* is not a usable name: use 1 to 64 letters"):
        load_scenario(write(tmp_path, text))


def test_a_label_of_64_safe_characters_is_accepted(tmp_path):
    label = "Aa0._+-" * 9 + "x"
    scenario = load_scenario(write(tmp_path, VALID + f"backends: [{{kind: transformers, label: '{label}'}}]\n"))
    assert scenario.backends[0].name == label


def alias_bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_before_anything_walks_it(tmp_path):
    text = VALID + "description: x\nbackends: [{kind: transformers, options: {x: *a5}}]\n"
    with pytest.raises(ScenarioError, match="aliases expand to over 100,000 values"):
        load_scenario(write(tmp_path, alias_bomb(6) + text.replace("description: x\n", "")))


def test_an_alias_inside_itself_is_refused(tmp_path):
    with pytest.raises(ScenarioError, match="refers to the node that contains it"):
        load_scenario(write(tmp_path, VALID + "backends: &loop [{kind: transformers, options: {x: *loop}}]\n"))


def test_a_few_aliases_within_the_budget_still_load(tmp_path):
    text = VALID.replace("[[640, 480]]", "&size [[640, 480]]") + "tiling: {max_num: 2}\n"
    assert load_scenario(write(tmp_path, text)).images.synthetic.sizes == [(640, 480)]


@pytest.mark.parametrize("make", ["folder", "fifo", "binary"])
def test_a_scenario_path_that_is_not_a_text_file_is_refused_in_one_line(tmp_path, make):
    path = tmp_path / "s.yaml"
    if make == "folder":
        path.mkdir()
    elif make == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(BenchError, match=f"scenario file {path}: (is a folder|not a regular file|not UTF-8)"):
        load_scenario(str(path))
