"""The recorder: records reach disk in order, off the timed path, before they are announced."""

import pytest

from benchbench.backends.base import Capabilities, Generation
from benchbench.config.scenario import load_scenario
from benchbench.execution.measure import Measurement
from benchbench.execution.recorder import Recorder
from benchbench.execution.schedule import SERIAL, Job
from benchbench.results.records import RecordSink, read_records
from benchbench.workload.build import build_workload

CAPABILITIES = Capabilities(streams_tokens=True, preprocesses_inside_engine=False, forces_exact_tokens=True,
                            controls_tiles=True, reports_token_ids=True)


def measurement(request, repeat: int = 0) -> Measurement:
    """Clock readings as the runner takes them: 1 ms preprocessing, tokens at 3 and 5 ms."""
    generation = Generation(text=" a b", output_tokens=2, token_ids=[1, 2], tiles=request.tiles_planned,
                            image_tokens=request.image_tokens_planned)
    ms = 1_000_000
    return Measurement("tiny", "transformers", CAPABILITIES, request, repeat, 1.0e9, 0, ms, 6 * ms,
                       ((3 * ms, 1), (5 * ms, 1)), generation)


@pytest.fixture
def requests():
    return build_workload(load_scenario("10x-image").with_overrides(requests=3, max_new_tokens=2)).measured


def test_records_are_written_in_order_before_they_are_announced(tmp_path, requests):
    on_disk_when_announced = []
    sink = RecordSink(tmp_path)
    recorder = Recorder(sink, lambda record: on_disk_when_announced.append(
        (record.request_id, [r.request_id for r in read_records(tmp_path)])))
    for request in requests:
        recorder.record(measurement(request))
    recorder.finish()
    sink.close()
    assert [r.request_id for r in read_records(tmp_path)] == ["r000", "r001", "r002"]
    assert all(request_id in written for request_id, written in on_disk_when_announced)
    assert [request_id for request_id, _ in on_disk_when_announced] == ["r000", "r001", "r002"]


def test_a_record_holds_the_timings_derived_from_the_clock_readings(tmp_path, requests):
    record = measurement(requests[0]).record()
    assert (record.preprocess_s, record.ttft_s, record.decode_s, record.e2e_s) == pytest.approx((0.001, 0.002, 0.002, 0.006))
    assert record.inter_token_s == pytest.approx([0.002]) and record.decode_tok_s == pytest.approx(500)
    assert record.fairness.ok and record.started_at == 1.0e9


def test_a_failed_announcement_fails_the_backend_without_losing_the_record(tmp_path, requests):
    def refuse(record):
        raise BrokenPipeError("parent gone")

    sink = RecordSink(tmp_path)
    recorder = Recorder(sink, refuse)
    recorder.record(measurement(requests[0]))
    with pytest.raises(BrokenPipeError):
        recorder.finish()
    sink.close()
    assert [r.request_id for r in read_records(tmp_path)] == ["r000"]


def test_the_serial_schedule_sends_jobs_in_order_one_at_a_time(requests):
    sent, recorded = [], []

    def measure(job: Job) -> Measurement:
        assert len(sent) == len(recorded)  # the previous request was recorded before this one is sent
        sent.append(job)
        return measurement(job.request, job.repeat)

    jobs = [Job(request, repeat) for repeat in range(2) for request in requests]
    SERIAL.drive(jobs, measure, recorded.append)
    assert sent == jobs and [(m.request.request_id, m.repeat) for m in recorded] == [
        (j.request.request_id, j.repeat) for j in jobs]
