"""A built workload saved in its run folder (``workload/``), so workers and ``--resume`` read the
exact requests and image bytes instead of building them again (seconds per hundred images).

``workload/requests.json`` holds every request with its images by index; ``workload/images/``
holds each image's bytes under the SHA-256 of those bytes. Reading checks every image's bytes
and the workload hash the manifest recorded: a changed or damaged folder is refused, never run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from benchbench.errors import BenchError
from benchbench.workload.build import ChatMessage, Workload, WorkloadImage, WorkloadRequest
from benchbench.workload.imaging import TilingConfig

WORKLOAD_DIR = "workload"
INDEX_FILE = "requests.json"
STORE_VERSION = 1


def save_workload(run_dir: Path, workload: Workload) -> Path:
    """Write the workload into ``run_dir/workload/``; the index last, so a half-written store has none."""
    folder = Path(run_dir) / WORKLOAD_DIR
    (folder / "images").mkdir(parents=True, exist_ok=True)
    images: dict[int, int] = {}  # id(image) -> index: files cycled over requests are stored once
    entries: list[dict] = []
    for request in workload.requests:
        for image in request.images:
            if id(image) not in images:
                images[id(image)] = len(entries)
                entries.append(_write_image(folder, image))
    index = {
        "store_version": STORE_VERSION,
        "hash": workload.hash,
        "scenario_name": workload.scenario_name,
        "repeats": workload.repeats,
        "cache": workload.cache,
        "load": workload.load,
        "images": entries,
        "requests": [_request_entry(request, images) for request in workload.requests],
    }
    tmp = folder / f"{INDEX_FILE}.tmp"
    tmp.write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, folder / INDEX_FILE)
    return folder


def has_saved_workload(run_dir: Path) -> bool:
    return (Path(run_dir) / WORKLOAD_DIR / INDEX_FILE).is_file()


def load_workload(run_dir: Path, expected_hash: str) -> Workload:
    """The saved workload, its image bytes and hash checked; BenchError if anything differs."""
    folder = Path(run_dir) / WORKLOAD_DIR
    try:
        index = json.loads((folder / INDEX_FILE).read_text(encoding="utf-8"))
        if index["store_version"] > STORE_VERSION:
            raise BenchError(f"run folder {run_dir}: its workload was saved by a newer benchbench; upgrade benchbench")
        images = [_read_image(folder, entry) for entry in index["images"]]
        requests = tuple(_request(e, images) for e in index["requests"])
        workload = Workload(index["scenario_name"], requests, index["repeats"], index.get("cache", "cold"), index.get("load"))
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise BenchError(f"run folder {run_dir}: its saved workload cannot be read ({exc}); start a new run") from None
    if workload.hash != expected_hash:
        raise BenchError(f"run folder {run_dir}: its saved workload does not match the manifest's hash; start a new run")
    return workload


def _write_image(folder: Path, image: WorkloadImage) -> dict:
    file_sha256 = hashlib.sha256(image.data).hexdigest()
    path = folder / "images" / (file_sha256 + (".jpg" if image.mime_type == "image/jpeg" else ".png"))
    if not path.exists():
        path.write_bytes(image.data)
    return {"file": f"images/{path.name}", "file_sha256": file_sha256, "source": image.source, "width": image.width,
            "height": image.height, "sha256": image.sha256, "mime_type": image.mime_type}


def _read_image(folder: Path, entry: dict) -> WorkloadImage:
    data = (folder / entry["file"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["file_sha256"]:
        raise ValueError(f"{entry['file']} does not match its SHA-256")
    return WorkloadImage(entry["source"], entry["width"], entry["height"], entry["sha256"], data, entry["mime_type"])


def _request_entry(request: WorkloadRequest, images: dict[int, int]) -> dict:
    return {
        "request_id": request.request_id,
        "phase": request.phase,
        "messages": [[m.role, m.text] for m in request.messages],
        "images": [images[id(image)] for image in request.images],
        "system_prompt": request.system_prompt,
        "max_new_tokens": request.max_new_tokens,
        "tiling": vars(request.tiling),
        "tokens_per_tile": request.tokens_per_tile,
        "seed": request.seed,
        "turn": request.turn,
    }


def _request(entry: dict, images: list[WorkloadImage]) -> WorkloadRequest:
    return WorkloadRequest(
        request_id=entry["request_id"],
        phase=entry["phase"],
        messages=tuple(ChatMessage(role, text) for role, text in entry["messages"]),
        images=tuple(images[i] for i in entry["images"]),
        system_prompt=entry["system_prompt"],
        max_new_tokens=entry["max_new_tokens"],
        tiling=TilingConfig(**entry["tiling"]),
        tokens_per_tile=entry["tokens_per_tile"],
        seed=entry["seed"],
        turn=entry["turn"],
    )
