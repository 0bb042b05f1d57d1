"""What an engine costs while it runs: GPU memory, SM use, power and energy (NVML), and the host
memory and CPU time of the engine's whole process tree (psutil), sampled on a thread of its own.

The worker starts one sampler around model load and one from the end of load to the last request,
so load's peak memory is reported apart from serving's. GPU figures are device-wide (NVML sees every
process on the card, a launched server included); energy is NVML's total-energy counter read at
start and stop, so it needs no sampling at all. With no driver, the GPU part holds NVML's own error
text and the host part is still measured. The sampler measures its own CPU time, so its cost is on
record next to the numbers it may disturb.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from benchbench.results.records import RequestRecord

DEFAULT_HZ = 15.0
TIMELINE_POINTS = 200  # kept per phase for the memory-over-time plot; peaks and means use every sample
MIB = 2**20


@dataclass
class GpuUsage:
    index: int
    name: str
    memory_peak_mib: float
    memory_mean_mib: float
    sm_util_mean_pct: float | None
    power_mean_w: float | None
    energy_j: float | None


@dataclass
class ResourceUsage:
    """One phase's usage; plain data for the manifest."""

    phase: str
    started_at: float
    """Wall-clock start (epoch seconds), to tell which records fall inside the window."""
    window_s: float
    samples: int
    sampler_cpu_s: float
    host_rss_peak_mib: float
    host_cpu_s: float
    gpus: list[GpuUsage] = field(default_factory=list)
    gpu_error: str | None = None
    annotate_error: str | None = None
    """Why per-request GPU figures are missing from some records, if they are."""
    timeline: list[list[float]] = field(default_factory=list)
    """[seconds from start, GPU memory used (MiB, all GPUs), host RSS (MiB)] per kept sample."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Nvml:
    """NVML handles for every GPU, or the reason there are none."""

    def __init__(self):
        self.handles, self.names, self.error = [], [], None
        try:
            import pynvml
        except ImportError:
            self.error = "nvidia-ml-py is not installed"
            return
        self.pynvml = pynvml
        try:
            pynvml.nvmlInit()
            for index in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                name = pynvml.nvmlDeviceGetName(handle)
                self.handles.append(handle)
                self.names.append(name.decode() if isinstance(name, bytes) else name)
        except pynvml.NVMLError as exc:
            self.error = f"NVML: {exc}"

    def read(self, function, handle, default=None):
        """One NVML query; a query the GPU does not support gives ``default``."""
        try:
            return function(handle)
        except self.pynvml.NVMLError:
            return default

    def energy_mj(self) -> list[int | None]:
        return [self.read(self.pynvml.nvmlDeviceGetTotalEnergyConsumption, h) for h in self.handles]

    def energy_mj_total(self) -> float | None:
        """The energy counters summed over GPUs (mJ since the driver loaded); None without them."""
        readings = self.energy_mj()
        return float(sum(readings)) if readings and None not in readings else None

    def memory_mib_total(self) -> float | None:
        readings = [self.read(self.pynvml.nvmlDeviceGetMemoryInfo, h) for h in self.handles]
        return sum(r.used for r in readings) / MIB if readings and None not in readings else None

    def sample(self) -> list[tuple[float, float | None, float | None]]:
        """(memory used MiB, SM utilisation %, power W) per GPU."""
        rows = []
        for handle in self.handles:
            memory = self.read(self.pynvml.nvmlDeviceGetMemoryInfo, handle)
            util = self.read(self.pynvml.nvmlDeviceGetUtilizationRates, handle)
            power = self.read(self.pynvml.nvmlDeviceGetPowerUsage, handle)
            rows.append((memory.used / MIB if memory else float("nan"), util.gpu if util else None,
                         power / 1000 if power is not None else None))  # fmt: skip
        return rows

    def close(self) -> None:
        if self.handles or self.error is None:
            try:
                self.pynvml.nvmlShutdown()
            except Exception:  # shutting down must never fail a run
                pass


def _energy_at(rows: list, t: float, now_energy: float | None) -> float | None:
    """The summed energy counter at ``t`` (seconds into the phase), interpolated between samples;
    past the last sample, the reading just taken."""
    later = next((i for i, row in enumerate(rows) if row[0] >= t), None)
    if later is None:
        return now_energy
    if later == 0 or rows[later][3] is None or rows[later - 1][3] is None:
        return rows[later][3]
    (t0, *_, e0), (t1, *_, e1) = rows[later - 1], rows[later]
    return e0 + (e1 - e0) * (t - t0) / (t1 - t0) if t1 > t0 else e1


class _ProcessTree:
    """RSS and CPU time of a process and all its descendants; CPU time of those that ended is kept.

    The descendants are re-found once a second from ``/proc/PID/task/TID/children`` (a few small
    reads); psutil's own ``children()`` scans every process on the machine (~50 ms with 150
    processes here), so it is only the fallback where the kernel lacks those files, and then runs
    every ``SLOW_REFRESH_S``. The members' RSS is read at every sample.
    """

    REFRESH_S, SLOW_REFRESH_S = 1.0, 10.0

    def __init__(self, root_pid: int):
        import psutil

        self.psutil, self.root = psutil, psutil.Process(root_pid)
        self.processes: dict[int, object] = {root_pid: self.root}
        self.first_cpu: dict[int, float] = {}
        self.last_cpu: dict[int, float] = {}
        self.fast = _children(root_pid) is not None
        self.refresh()
        self.first_cpu = dict(self.last_cpu)

    def _member_pids(self) -> list[int]:
        if not self.fast:
            try:
                return [self.root.pid, *(child.pid for child in self.root.children(recursive=True))]
            except self.psutil.Error:
                return []
        pids, pending = [], [self.root.pid]
        while pending:
            pid = pending.pop()
            pids.append(pid)
            pending += _children(pid) or []
        return pids

    def refresh(self) -> None:
        """Find the tree's members again and note each one's CPU seconds."""
        members = []
        for pid in self._member_pids():
            try:
                process = self.processes.get(pid) or self.psutil.Process(pid)
                times = process.cpu_times()
            except self.psutil.Error:
                continue  # ended while we looked
            self.processes[pid] = process
            self.last_cpu[pid] = times.user + times.system
            members.append(process)
        self.members = members
        self.refreshed_at = time.monotonic()

    def rss_mib(self) -> float:
        if time.monotonic() - self.refreshed_at >= (self.REFRESH_S if self.fast else self.SLOW_REFRESH_S):
            self.refresh()
        rss = 0
        for process in self.members:
            try:
                rss += process.memory_info().rss
            except self.psutil.Error:
                continue
        return rss / MIB

    def cpu_s(self) -> float:
        self.refresh()
        return sum(seconds - self.first_cpu.get(pid, 0.0) for pid, seconds in self.last_cpu.items())


def _children(pid: int) -> list[int] | None:
    """Direct children of ``pid`` from /proc (every thread's list); None where the kernel has no such file."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []  # the process ended
    children, readable = [], False
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as handle:
                children += [int(child) for child in handle.read().split()]
            readable = True
        except FileNotFoundError:
            continue  # the thread ended, or the kernel lacks the file
        except OSError:
            continue
    return children if readable else None


class ResourceSampler:
    """Samples at ``hz`` on a daemon thread between ``start`` and ``stop``; use as a context manager.

    ``into`` receives the phase's usage (as a dict, under the phase name) when it stops, also when
    the phase ended in an exception; ``enabled=False`` samples nothing (the overhead benchmark's baseline).
    """

    def __init__(self, phase: str, into: dict | None = None, enabled: bool = True, root_pid: int | None = None,
                 hz: float = DEFAULT_HZ):
        self.phase, self.interval_s, self.into, self.enabled = phase, 1.0 / hz, into, enabled
        self.root_pid = root_pid or os.getpid()
        self._stop = threading.Event()
        self._rows: list[tuple[float, list, float]] = []
        self._thread_cpu_s = 0.0
        self.usage: ResourceUsage | None = None
        self.annotate_error: str | None = None

    def __enter__(self) -> ResourceSampler:
        if self.enabled:
            self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.enabled:
            usage = self.stop()
            if self.into is not None:
                self.into[self.phase] = usage.to_dict()

    def start(self) -> None:
        self._nvml = _Nvml()
        self._tree = _ProcessTree(self.root_pid)
        self._energy_start = self._nvml.energy_mj()
        self._started_at, self._t0 = time.time(), time.perf_counter()
        self._thread = threading.Thread(target=self._loop, name=f"resources-{self.phase}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        cpu0 = time.thread_time()
        while True:
            self._take()
            if self._stop.wait(self.interval_s):
                break
        self._take()  # the state at stop, so a short phase still has its end
        self._thread_cpu_s = time.thread_time() - cpu0

    def _take(self) -> None:
        per_gpu = self._nvml.sample()
        energy = self._nvml.energy_mj_total() if per_gpu else None
        self._rows.append((time.perf_counter() - self._t0, per_gpu, self._tree.rss_mib(), energy))

    def annotate(self, record: RequestRecord) -> RequestRecord:
        """The record with the GPU side of its own time span in ``details["resources"]``: the memory
        peak seen and the summed energy counters at its start and end (mJ), so a repeat's or a load
        point's energy is the last end minus the first start, however requests overlapped. Unchanged
        without a GPU or outside a sampled phase. Called by the recorder's thread, off the timed span."""
        if self.usage is not None or not getattr(self, "_rows", None) or not self._nvml.handles:
            return record
        try:
            return self._annotated(record)
        except Exception as exc:  # a measuring aid must never cost the run its record; the failure is kept
            self.annotate_error = self.annotate_error or f"{type(exc).__name__}: {exc}"
            return record

    def _annotated(self, record: RequestRecord) -> RequestRecord:
        start = record.started_at - self._started_at
        end = start + record.e2e_s
        rows = list(self._rows)  # the sampling thread appends meanwhile
        now_energy, now_memory = self._nvml.energy_mj_total(), self._nvml.memory_mib_total()
        inside = [sum(g[0] for g in row[1]) for row in rows if start <= row[0] <= end]
        before = [row for row in rows if row[0] <= end]
        peak = max([*inside, *([sum(g[0] for g in before[-1][1])] if before else []),
                    *([now_memory] if now_memory is not None and (not rows or rows[-1][0] < end) else [])])
        resources = {"gpu_mem_peak_mib": round(peak, 1), "energy_mj_start": _energy_at(rows, start, now_energy),
                     "energy_mj_end": _energy_at(rows, end, now_energy)}  # fmt: skip
        return record.model_copy(update={"details": {**record.details, "resources": resources}})

    def stop(self) -> ResourceUsage:
        if self.usage is None:
            self._stop.set()
            self._thread.join()
            window_s = time.perf_counter() - self._t0
            self.usage = self._summarise(window_s, self._nvml.energy_mj())
            self._nvml.close()
        return self.usage

    def _summarise(self, window_s: float, energy_end: list[int | None]) -> ResourceUsage:
        rows = self._rows
        gpus = []
        for index, name in enumerate(self._nvml.names):
            memory = [row[1][index][0] for row in rows]
            util = [row[1][index][1] for row in rows if row[1][index][1] is not None]
            power = [row[1][index][2] for row in rows if row[1][index][2] is not None]
            start, end = self._energy_start[index], energy_end[index]
            gpus.append(GpuUsage(
                index=index, name=name, memory_peak_mib=max(memory), memory_mean_mib=sum(memory) / len(memory),
                sm_util_mean_pct=sum(util) / len(util) if util else None,
                power_mean_w=sum(power) / len(power) if power else None,
                energy_j=(end - start) / 1000 if start is not None and end is not None else None,
            ))  # fmt: skip
        step = max(1, len(rows) // TIMELINE_POINTS)
        timeline = [[round(t, 3), round(sum(g[0] for g in per_gpu), 1), round(rss, 1)]
                    for t, per_gpu, rss, _ in rows[::step]]  # fmt: skip
        return ResourceUsage(
            phase=self.phase, started_at=self._started_at, window_s=window_s, samples=len(rows), sampler_cpu_s=self._thread_cpu_s,
            host_rss_peak_mib=max(row[2] for row in rows), host_cpu_s=self._tree.cpu_s(),
            gpus=gpus, gpu_error=self._nvml.error, annotate_error=self.annotate_error, timeline=timeline,
        )  # fmt: skip
