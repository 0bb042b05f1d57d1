"""The CUDA paths, checked on a machine without a GPU, so they cannot break unnoticed between GPU runs.

Placement and device-map choice and the synchronize-before-clock rule run against a CUDA that
``torch.cuda`` is monkeypatched to report (a fake device: the only fake here); the resource
sampler meets NVML's real error on this driverless machine, and measures a real launched process
tree (a stand-in server, not an engine).
"""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchbench.backends.base import BackendContext, Capabilities, Generation
from benchbench.backends.transformers import TransformersBackend, TransformersOptions
from benchbench.config.scenario import load_scenario
from benchbench.execution import measure
from benchbench.execution.launch import ServerSpec, free_port, launch
from benchbench.execution.resources import ResourceSampler
from benchbench.workload.build import build_workload


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch.cuda reporting two initialised GPUs; records every synchronize."""
    import torch

    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("synchronize"))
    return calls


def backend(placement: str = "default", device: str | None = None, dtype: str = "auto") -> TransformersBackend:
    context = BackendContext("transformers", Path("."), dtype, device, Path("."), 0)
    return TransformersBackend(TransformersOptions(placement=placement), context)


@pytest.mark.parametrize(
    ("placement", "device", "expected"),
    [("default", None, "cuda"), ("default", "cpu", "cpu"), ("default", "cuda", "cuda"), ("auto", None, "auto")],
)
def test_default_placement_follows_cuda_and_the_device_flag(fake_cuda, placement, device, expected):
    import torch

    assert backend(placement, device)._resolve_placement(torch) == expected


def test_cuda_placement_maps_the_whole_model_to_gpu_0_in_bfloat16(fake_cuda):
    import torch

    chosen = backend("cuda")
    assert chosen._placement_kwargs("cuda", {}, torch) == {"device_map": {"": 0}}
    assert chosen._placement_kwargs("auto", {}, torch) == {"device_map": "auto"}
    from benchbench.backends.transformers import _resolve_dtype

    assert _resolve_dtype("auto", "cuda", torch) is torch.bfloat16 and _resolve_dtype("auto", "cpu", torch) is torch.float32


def test_split_placement_uses_internvls_map_over_every_gpu_with_native_module_names(fake_cuda):
    import torch

    split = backend("split")
    split.remote_code = False  # what load() found: a native -hf checkpoint
    device_map = split._placement_kwargs("split", {"text_config": {"num_hidden_layers": 24}}, torch)["device_map"]
    assert set(device_map.values()) == {0, 1}
    assert device_map["model.vision_tower"] == 0 and device_map["lm_head"] == 0
    assert device_map["model.language_model.layers.23"] == 0  # the last layer sits with the head
    assert sum(1 for key in device_map if key.startswith("model.language_model.layers.")) == 24


def test_transformers_synchronize_waits_for_cuda_only_once_cuda_is_in_use(fake_cuda, monkeypatch):
    import torch

    backend().synchronize()
    assert fake_cuda == ["synchronize"]
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    backend().synchronize()
    assert fake_cuda == ["synchronize"]  # no CUDA context yet: nothing to wait for, and none is created


class SyncLoggingBackend:
    """Stand-in backend whose device work is a log entry; it emits two streamed chunks."""

    kind, capabilities = "stand-in", Capabilities(True, False, True, True, True)

    def __init__(self, log: list[str]):
        self.log, self.context = log, BackendContext("stand-in", Path("."), "auto", "cuda", Path("."), 0)

    def prepare(self, request):
        self.log.append("prepare")
        return request

    def synchronize(self) -> None:
        self.log.append("synchronize")

    def generate(self, request, timer) -> Generation:
        for _ in range(2):
            self.log.append("kernel")
            timer.tokens(1)
        n = request.max_new_tokens
        return Generation(text="x" * n, output_tokens=n, tiles=request.tiles_planned,
                          image_tokens=request.image_tokens_planned, finish_reason="length")  # fmt: skip


def test_every_clock_read_after_device_work_is_preceded_by_a_synchronize(monkeypatch):
    log: list[str] = []
    real_clock = time.perf_counter_ns
    monkeypatch.setattr(measure.time, "perf_counter_ns", lambda: log.append("clock") or real_clock())
    request = build_workload(load_scenario("10x-image")).measured[0]
    measure.measure_request(SyncLoggingBackend(log), request, repeat=0)
    first_work = log.index("prepare")
    reads = [i for i, entry in enumerate(log) if entry == "clock" and i > first_work]
    assert len(reads) == 4  # after preprocessing, two tokens, and at the end
    assert all(log[i - 1] == "synchronize" for i in reads), log


def test_sampler_records_nvmls_own_error_without_a_driver_and_still_measures_the_host():
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        pytest.skip("an NVIDIA driver is present here")
    except pynvml.NVMLError as exc:
        nvml_says = str(exc)
    with ResourceSampler("serve") as sampler:
        time.sleep(0.3)
    usage = sampler.usage
    assert usage.gpus == [] and usage.gpu_error == f"NVML: {nvml_says}"
    assert usage.host_rss_peak_mib > 10 and usage.samples >= 3 and usage.sampler_cpu_s >= 0


STAND_IN_SERVER = textwrap.dedent("""
    # Stand-in server (not an engine): holds 200 MiB, burns ~0.6 s of CPU, then answers /health.
    import sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer
    ballast = bytearray(200 * 2**20)
    for offset in range(0, len(ballast), 4096):
        ballast[offset] = 1
    start = time.process_time()
    while time.process_time() - start < 0.6:
        pass
    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *args):
            pass
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
""")


def test_process_tree_accounting_includes_a_launched_servers_memory_and_cpu(tmp_path):
    port = free_port()
    spec = ServerSpec(name="stand-in", argv=(sys.executable, "-c", STAND_IN_SERVER, str(port)), port=port,
                      log_path=tmp_path / "stand-in.log", startup_timeout_s=60)  # fmt: skip
    import psutil

    own_rss_mib = psutil.Process().memory_info().rss / 2**20
    into: dict = {}
    own_cpu_s = time.process_time()
    with ResourceSampler("serve", into=into):
        with launch(spec):
            time.sleep(0.3)  # sampled while the server holds its memory
    own_cpu_s = time.process_time() - own_cpu_s
    usage = into["serve"]
    assert usage["host_rss_peak_mib"] >= own_rss_mib + 190  # this process (the worker) plus the server's 200 MiB
    assert usage["host_cpu_s"] - own_cpu_s >= 0.5  # the server's CPU time counts although it has ended
