"""Which LightLLM is installed, and what its api_server accepts: read before launching it.

LightLLM's flags changed between versions (ModelTC/lightllm; api_cli.py, api_start.py):
- v1.1.0 (2025): ``--enable_multimodal`` turns vision on; no ``--disable_image_resize``.
- v1.2.0 and main: vision is on by itself and ``--enable_multimodal`` is gone, but argparse
  prefix-matches it to ``--enable_multimodal_url_cache`` (which turns a URL cache on instead);
  main of 2026-03 had neither and refused it (exit 2). v1.2.0+ shrinks images over 3,686,400 px
  before tiling; main has ``--disable_image_resize`` and a per-request ``disable_prompt_cache``.
- every version keeps a prompt (radix) cache unless ``--disable_dynamic_prompt_cache``.
So benchbench asks the installed server's ``--help`` which flags exist and passes only those.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass

from benchbench.errors import BackendError

MODULE = "lightllm.server.api_server"
PROBE_TIMEOUT_S = 120.0
_VERSION_SCRIPT = """
import json, os, subprocess, importlib.metadata as metadata
import lightllm
try:
    version = metadata.version("lightllm")
except Exception:
    version = getattr(lightllm, "__version__", None)
folder = os.path.dirname(os.path.abspath(lightllm.__file__))
try:
    commit = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True,
                            timeout=10).stdout.strip() or None
except Exception:
    commit = None
print(json.dumps({"version": version, "commit": commit}))
"""


@dataclass(frozen=True)
class InstalledLightLLM:
    """The installed server's version, git commit and the set of flags its ``--help`` lists."""

    version: str | None
    commit: str | None
    flags: frozenset[str]

    @property
    def needs_enable_multimodal(self) -> bool:
        """Only versions that list the exact flag take it; later ones would read it as another flag."""
        return "--enable_multimodal" in self.flags

    @property
    def can_disable_prompt_cache(self) -> bool:
        return "--disable_dynamic_prompt_cache" in self.flags

    @property
    def can_disable_image_resize(self) -> bool:
        return "--disable_image_resize" in self.flags

    @property
    def resizes_large_images(self) -> bool:
        """v1.2.0 onwards (recognised by its URL-cache flag) shrinks large images unless told not to."""
        return "--enable_multimodal_url_cache" in self.flags and not self.can_disable_image_resize

    @property
    def takes_disable_prompt_cache_per_request(self) -> bool:
        """main's sampling parameters take ``disable_prompt_cache``; its flag set is the newest one."""
        return self.can_disable_image_resize

    def facts(self) -> dict[str, object]:
        return {"engine": "lightllm", "engine_version": self.version, "engine_commit": self.commit}


def inspect_installed(python: str, env: dict[str, str], timeout_s: float = PROBE_TIMEOUT_S) -> InstalledLightLLM:
    """Ask the environment LightLLM is installed in for its version and its api_server's flags."""
    help_text = _run([python, "-m", MODULE, "--help"], env, timeout_s, "list its flags")
    flags = frozenset(re.findall(r"(?<![\w-])--[a-z][a-z0-9_]*", help_text))
    try:
        found = json.loads(_run([python, "-c", _VERSION_SCRIPT], env, timeout_s, "report its version").splitlines()[-1])
    except (ValueError, IndexError):
        found = {}
    return InstalledLightLLM(found.get("version"), found.get("commit"), flags)


def _run(argv: list[str], env: dict[str, str], timeout_s: float, what: str) -> str:
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BackendError(f"lightllm: {argv[0]} did not {what} within {timeout_s:g} s; check the installation") from None
    except OSError as exc:
        raise BackendError(f"lightllm server: cannot run {argv[0]!r} ({exc.strerror}); check the python/executable setting") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise BackendError(f"lightllm: {' '.join(argv[:3])} could not {what} (exit {done.returncode}: {last}); check the installation")
    return done.stdout
