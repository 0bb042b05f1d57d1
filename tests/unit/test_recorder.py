"""The recorder: a record is in the kernel before the next request starts; sync and announcement follow."""

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


def test_a_record_is_written_at_once_and_announced_later_in_order(tmp_path, requests):
    announced = []
    sink = RecordSink(tmp_path)
    recorder = Recorder(sink, announced.append)
    recorder.record(measurement(requests[0]))
    assert [r.request_id for r in read_records(tmp_path)] == ["r000"]  # readable before anything else runs
    recorder.record(measurement(requests[1]))
    recorder.finish()
    sink.close()
    assert [r.request_id for r in announced] == ["r000", "r001"] == [r.request_id for r in read_records(tmp_path)]
    record = announced[0]
    assert (record.preprocess_s, record.ttft_s, record.decode_s, record.e2e_s) == pytest.approx((0.001, 0.002, 0.002, 0.006))
    assert record.inter_token_s == pytest.approx([0.002]) and record.fairness.ok


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
