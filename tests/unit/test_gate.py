"""The CI gate: rules parse into checks, verdicts follow the bootstrap-CI rule on repeat-level samples,
exit codes say pass / regression / cannot judge, and the JUnit XML is well formed."""

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from benchbench.gate.baseline import BASELINE_SCHEMA_VERSION, BackendSnapshot, Output, Snapshot, load_baseline, snapshot_run
from benchbench.errors import BenchError
from benchbench.gate.judge import GateResult, Status, Verdict, evaluate
from benchbench.gate.output import junit_xml, markdown
from benchbench.gate.rules import (
    DEFAULT_REPEATS,
    ConsistencyCheck,
    FairnessCheck,
    RelativeCheck,
    default_rules,
    load_gate_file,
    merge_rules,
    parse_rule,
)
from benchbench.results.metrics import Direction
from benchbench.results.records import BackendOutcome, Fairness, Manifest, RequestRecord, write_manifest

WORKLOAD = "a" * 64
ENV = {"cpu": "Test CPU 3000", "cpu_count": 2, "gpus": [], "packages": {"torch": "2.13.0"}}


# ---------------------------------------------------------------- rule parsing


def test_rules_parse_into_check_objects():
    assert parse_rule("output_tok_s: -5%") == RelativeCheck("output_tok_s", 0.05)
    assert parse_rule("ttft_s_p90:+10%") == RelativeCheck("ttft_s_p90", 0.10)
    assert parse_rule("fairness: must_pass") == FairnessCheck()
    assert parse_rule("consistency.exact_match: >= 0.99") == ConsistencyCheck("exact_match", ">=", 0.99)
    assert parse_rule("consistency.edit_distance: <= 0.1") == ConsistencyCheck("edit_distance", "<=", 0.1)


def test_rule_text_round_trips():
    for text in ("output_tok_s: -5%", "ttft_s_p90: +10%", "fairness: must_pass", "consistency.agreement: >= 0.9"):
        assert parse_rule(text).text == text


def test_tolerance_with_the_better_direction_sign_is_refused_with_the_fix():
    with pytest.raises(BenchError, match=r"write 'output_tok_s: -5%'"):
        parse_rule("output_tok_s: +5%")
    with pytest.raises(BenchError, match=r"write 'e2e_s_p50: \+5%'"):
        parse_rule("e2e_s_p50: -5%")


def test_unknown_metric_suggests_the_close_name():
    with pytest.raises(BenchError, match="did you mean output_tok_s"):
        parse_rule("output_toks: -5%")
    with pytest.raises(BenchError, match="did you mean consistency.exact_match"):
        parse_rule("consistency.exact_matches: >= 0.9")


@pytest.mark.parametrize("text", ["output_tok_s -5%", "output_tok_s: 5", "output_tok_s: -100%",
                                  "fairness: yes", "consistency.exact_match: 0.99", "consistency.agreement: >= 2"])
def test_malformed_rules_are_bench_errors(text):
    with pytest.raises(BenchError, match="rule"):
        parse_rule(text)


def test_cli_rules_override_file_rules_per_metric():
    merged = merge_rules([parse_rule("output_tok_s: -5%"), FairnessCheck()], [parse_rule("output_tok_s: -20%")])
    assert merged == [RelativeCheck("output_tok_s", 0.20), FairnessCheck()]


def test_gates_file_names_baseline_relative_to_itself_and_defaults_repeats(tmp_path):
    path = tmp_path / "ci" / "gates.yaml"
    path.parent.mkdir()
    path.write_text("baseline: base.json\nrules:\n  output_tok_s: -5%\n  fairness: must_pass\n"
                    "  consistency.exact_match: '>= 0.99'\n")
    gates = load_gate_file(path)
    assert gates.baseline == tmp_path / "ci" / "base.json" and gates.repeats == DEFAULT_REPEATS
    assert [rule.key for rule in gates.rules] == ["output_tok_s", "fairness", "consistency.exact_match"]


@pytest.mark.parametrize("text, match", [
    ("rules: {output_tok_s: -5%}\nbaselin: x.json\n", "baselin"),
    ("rules: {output_tok_s: +5%}\n", "gates.yaml: rule 'output_tok_s: \\+5%'"),
    ("rules: [\n", "not valid YAML"),
    ("rules: {}\n", "rules"),
])
def test_bad_gates_file_names_the_file_and_field(tmp_path, text, match):
    path = tmp_path / "gates.yaml"
    path.write_text(text)
    with pytest.raises(BenchError, match=match):
        load_gate_file(path)


# ---------------------------------------------------------------- decisions on synthetic samples


def backend(samples=None, repeats=None, outputs=None, unfair=0, status="ok", **metrics):
    metrics = metrics or {"output_tok_s": samples}
    repeats = repeats or len(next(iter(metrics.values())))
    outputs = outputs if outputs is not None else {"r0": [Output(token_ids=[1, 2, 3, 4], text="abcd")]}
    violations = ["r0 (repeat 0): output_tokens 3 != max_new_tokens 4"] if unfair else []
    return BackendSnapshot(kind="transformers", status=status, repeats=repeats, metrics=metrics, outputs=outputs,
                           unfair_requests=unfair, violations=violations)


def snap(backends, workload=WORKLOAD, environment=ENV):
    return Snapshot(created_at="now", source="test", scenario="synthetic", workload_hash=workload,
                    model={"weights": {"sha256": "w"}}, environment=environment, backends=backends)


def noisy(mean, cv=0.02, n=DEFAULT_REPEATS, seed=0):
    return [float(v) for v in np.random.default_rng(seed).normal(mean, cv * mean, n)]


def only(result):
    (verdict,) = result.verdicts
    return verdict


def test_same_distribution_passes():
    result = evaluate(snap({"t": backend(noisy(100))}), snap({"t": backend(noisy(100, seed=1))}),
                      [parse_rule("output_tok_s: -5%")])
    assert only(result).status is Status.PASS and result.exit_code == 0


def test_clear_throughput_drop_is_a_regression_naming_its_size_and_interval():
    result = evaluate(snap({"t": backend(noisy(100))}), snap({"t": backend(noisy(70, seed=1))}),
                      [parse_rule("output_tok_s: -5%")])
    verdict = only(result)
    assert verdict.status is Status.REGRESSION and result.exit_code == 1
    assert verdict.ratio.high < 0.95 and abs(verdict.ratio.estimate - 0.7) < 0.03
    assert re.match(r"-(29|30)\.\d% \[-3\d\.\d%, -2\d\.\d%\] 99% CI \(12 vs 12 repeats\): worse beyond the -5% tolerance",
                    verdict.reason)


def test_real_but_small_drop_within_tolerance_passes():
    result = evaluate(snap({"t": backend(noisy(100, cv=0.005))}), snap({"t": backend(noisy(97, cv=0.005, seed=1))}),
                      [parse_rule("output_tok_s: -5%")])
    verdict = only(result)
    assert verdict.status is Status.PASS and "within the -5% tolerance" in verdict.reason


def test_large_drop_hidden_in_noise_is_not_called_a_regression():
    base, run = [100, 60, 140, 100], [50, 130, 60, 70]
    verdict = only(evaluate(snap({"t": backend(base)}), snap({"t": backend(run)}), [parse_rule("output_tok_s: -5%")]))
    assert verdict.status is Status.PASS and "too noisy" in verdict.reason


def test_latency_rise_fails_a_lower_is_better_rule_and_a_fall_passes():
    rule = parse_rule("ttft_s_p90: +10%")
    slower = evaluate(snap({"t": backend(ttft_s_p90=noisy(1.0))}), snap({"t": backend(ttft_s_p90=noisy(1.5, seed=1))}), [rule])
    faster = evaluate(snap({"t": backend(ttft_s_p90=noisy(1.0))}), snap({"t": backend(ttft_s_p90=noisy(0.5, seed=1))}), [rule])
    assert only(slower).status is Status.REGRESSION and "+50" in only(slower).reason
    assert only(faster).status is Status.PASS and only(faster).reason.endswith("better")


def test_too_few_repeats_cannot_be_judged():
    result = evaluate(snap({"t": backend(noisy(100))}), snap({"t": backend([50.0, 51.0])}), [parse_rule("output_tok_s: -5%")])
    verdict = only(result)
    assert verdict.status is Status.CANNOT_JUDGE and result.exit_code == 2
    assert "too few repeats: baseline 12, run 2" in verdict.reason


def test_fewer_repeats_than_calibrated_are_judged_with_a_note():
    result = evaluate(snap({"t": backend(noisy(100, n=5))}), snap({"t": backend(noisy(100, n=5, seed=1))}),
                      [parse_rule("output_tok_s: -5%")])
    assert result.exit_code == 0 and any("calibrated for 12" in note for note in result.notes)


def test_different_workload_cannot_judge_any_rule():
    result = evaluate(snap({"t": backend(noisy(100))}), snap({"t": backend(noisy(50))}, workload="b" * 64), default_rules())
    assert {v.status for v in result.verdicts} == {Status.CANNOT_JUDGE} and result.exit_code == 2
    assert "different workload: baseline aaaaaaaaaaaaaaaa" in result.verdicts[0].reason


def test_missing_or_failed_backend_cannot_be_judged():
    rules = [parse_rule("output_tok_s: -5%")]
    missing = evaluate(snap({"t": backend(noisy(100)), "u": backend(noisy(100))}), snap({"t": backend(noisy(100))}), rules)
    failed = evaluate(snap({"t": backend(noisy(100))}), snap({"t": backend(noisy(100), status="failed")}), rules)
    assert [v.status for v in missing.verdicts] == [Status.PASS, Status.CANNOT_JUDGE] and missing.exit_code == 2
    assert "backend u is in the baseline but missing from the run" in missing.verdicts[1].reason
    assert only(failed).status is Status.CANNOT_JUDGE and "did not finish" in only(failed).reason


def test_metric_the_engine_does_not_report_cannot_be_judged():
    verdict = only(evaluate(snap({"t": backend(noisy(100))}), snap({"t": backend(noisy(100))}), [parse_rule("ttft_s_p90: +10%")]))
    assert verdict.status is Status.CANNOT_JUDGE and "no ttft_s_p90 samples" in verdict.reason


# ---------------------------------------------------------------- rules on load points (NAME@POINT)


def load_backend(**per_point):
    """A load run's backend snapshot: ``req_s@rate=4=noisy(...)`` written as ``rate_4=noisy(...)``."""
    samples = {}
    for key, values in per_point.items():
        kind, value = key.rsplit("_", 1)
        samples[f"req_s@{kind}={value}"] = values
        samples[f"error_rate@{kind}={value}"] = [0.0] * len(values)
    return backend(**samples)


def test_load_point_rules_parse_with_the_metrics_direction_and_round_trip():
    assert parse_rule("goodput_req_s@rate=4: -5%") == RelativeCheck("goodput_req_s@rate=4", 0.05)
    rule = parse_rule("ttft_s_p99@concurrency=16: +10%")
    assert (rule.point, rule.direction, rule.text) == ("concurrency=16", Direction.LOWER_IS_BETTER,
                                                      "ttft_s_p99@concurrency=16: +10%")
    with pytest.raises(BenchError, match=r"write 'ttft_s_p99@rate=2: \+10%'"):
        parse_rule("ttft_s_p99@rate=2: -10%")


def test_a_load_only_metric_needs_a_point_and_an_unknown_one_is_suggested():
    with pytest.raises(BenchError, match=r"goodput_req_s is measured per load point; .*'goodput_req_s@rate=4: -5%'"):
        parse_rule("goodput_req_s: -5%")
    with pytest.raises(BenchError, match="did you mean ttft_s_p99"):
        parse_rule("ttft_s_p999@rate=4: +5%")


def test_a_rule_at_a_load_point_is_judged_on_that_points_repeat_samples():
    base = snap({"t": load_backend(rate_2=noisy(2), rate_4=noisy(4))})
    slower_at_4 = snap({"t": load_backend(rate_2=noisy(2, seed=1), rate_4=noisy(3, seed=1))})
    at_2, at_4 = parse_rule("req_s@rate=2: -5%"), parse_rule("req_s@rate=4: -5%")
    result = evaluate(base, slower_at_4, [at_2, at_4])
    assert [v.status for v in result.verdicts] == [Status.PASS, Status.REGRESSION] and result.exit_code == 1
    assert result.verdicts[1].rule == "req_s@rate=4: -5%" and "-25" in result.verdicts[1].reason


def test_a_rule_naming_a_point_the_run_lacks_is_refused_naming_its_points():
    base = snap({"t": load_backend(rate_2=noisy(2), rate_4=noisy(4))})
    run = snap({"t": load_backend(rate_2=noisy(2), rate_4=noisy(4))})
    with pytest.raises(BenchError, match=r"^rule 'req_s@rate=8: -5%': the run test has no load point 'rate=8'; "
                                         r"its points are rate=2, rate=4$"):
        evaluate(base, run, [parse_rule("req_s@rate=8: -5%")])
    with pytest.raises(BenchError, match=r"measured load points; gate one, e.g. 'output_tok_s@rate=2'"):
        evaluate(base, run, [parse_rule("output_tok_s: -5%")])
    serial = snap({"t": backend(noisy(100))})
    with pytest.raises(BenchError, match=r"has no load point 'rate=2'; it has no load points \(a serial run\)"):
        evaluate(serial, serial, [parse_rule("req_s@rate=2: -5%")])


def test_different_hardware_blocks_timings_but_not_fairness_unless_allowed():
    other = {**ENV, "cpu": "Other CPU 9000"}
    rules = [parse_rule("output_tok_s: -5%"), FairnessCheck()]
    blocked = evaluate(snap({"t": backend(noisy(100))}), snap({"t": backend(noisy(100))}, environment=other), rules)
    assert [v.status for v in blocked.verdicts] == [Status.CANNOT_JUDGE, Status.PASS]
    assert any("Other CPU 9000" in note for note in blocked.notes)
    allowed = evaluate(snap({"t": backend(noisy(100))}), snap({"t": backend(noisy(100))}, environment=other), rules, True)
    assert allowed.exit_code == 0


def test_fairness_violation_fails_on_its_own():
    result = evaluate(snap({"t": backend(noisy(100))}), snap({"t": backend(noisy(100), unfair=2)}), [FairnessCheck()])
    assert only(result).status is Status.REGRESSION and "2 unfair measured request(s)" in only(result).reason


def test_consistency_drop_fails_naming_the_first_differing_request():
    reference = {f"r{i}": [Output(token_ids=[1, 2, 3, 4], text="")] for i in range(4)}
    changed = {**reference, "r2": [Output(token_ids=[1, 2, 3, 4], text=""), Output(token_ids=[1, 2, 9, 9], text="")]}
    rules = [parse_rule("consistency.exact_match: >= 0.99"), parse_rule("consistency.agreement: >= 0.8")]
    result = evaluate(snap({"t": backend(noisy(100), outputs=reference)}), snap({"t": backend(noisy(100), outputs=changed)}), rules)
    exact, agreement = result.verdicts
    assert exact.status is Status.REGRESSION and exact.current == 0.75
    assert "1 of 4 requests differ" in exact.reason and "r2, from position 2" in exact.reason
    assert agreement.status is Status.PASS and agreement.current == pytest.approx(0.875)


def test_consistency_compares_text_when_token_ids_are_missing():
    base = {"r0": [Output(token_ids=None, text="hello")]}
    run = {"r0": [Output(token_ids=None, text="hellp")]}
    result = evaluate(snap({"t": backend(noisy(100), outputs=base)}), snap({"t": backend(noisy(100), outputs=run)}),
                      [parse_rule("consistency.edit_distance: <= 0.1")])
    assert only(result).status is Status.REGRESSION and only(result).current == pytest.approx(0.2)


def test_regression_beats_cannot_judge_in_the_exit_code():
    result = evaluate(snap({"t": backend(noisy(100)), "u": backend(noisy(100))}), snap({"t": backend(noisy(60))}),
                      [parse_rule("output_tok_s: -5%")])
    assert [v.status for v in result.verdicts] == [Status.REGRESSION, Status.CANNOT_JUDGE] and result.exit_code == 1


# ---------------------------------------------------------------- outputs


def test_junit_xml_has_one_testcase_per_rule_and_counts_that_match():
    result = evaluate(snap({"t": backend(noisy(100)), "u": backend(noisy(100))}), snap({"t": backend(noisy(60), unfair=1)}),
                      [parse_rule("output_tok_s: -5%"), FairnessCheck()])
    root = ET.fromstring(junit_xml(result))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert root.tag == "testsuites" and len(cases) == int(suite.get("tests")) == 4
    assert len(suite.findall("testcase/failure")) == int(suite.get("failures")) == 2
    assert len(suite.findall("testcase/error")) == int(suite.get("errors")) == 2
    assert {(c.get("classname"), c.get("name")) for c in cases} == {
        (f"benchbench.gate.judge.{b}", r) for b in "tu" for r in ("output_tok_s: -5%", "fairness: must_pass")}
    assert "-40" in cases[0].find("failure").get("message")


def test_markdown_summary_states_outcome_and_method():
    result = evaluate(snap({"t": backend(noisy(100))}), snap({"t": backend(noisy(60))}), [parse_rule("output_tok_s: -5%")])
    text = markdown(result, "base.json", "runs/x")
    assert text.startswith("### benchbench gate: regression (exit 1)")
    assert "| t " in text and "bootstrap" in text


# ---------------------------------------------------------------- baseline files and the real CLI


def write_run(run_dir, tok_s_per_repeat, *, workload=WORKLOAD, unfair_repeat=None, requests=3, tokens=4):
    """A run folder of synthetic records: each repeat's requests run back to back at the given tok/s."""
    run_dir.mkdir(parents=True)
    clock, lines = 1000.0, []
    for repeat, tok_s in enumerate(tok_s_per_repeat):
        for index in range(requests):
            e2e = tokens / tok_s
            fair = repeat != unfair_repeat
            record = RequestRecord(
                backend="transformers", backend_kind="transformers", phase="measure", request_id=f"r{index}",
                repeat=repeat, started_at=clock, max_tiles=6, tiles_planned=1, tiles=1, image_tokens_planned=256,
                image_tokens=256, input_tokens=300, max_new_tokens=tokens, output_tokens=tokens, preprocess_s=0.01,
                ttft_s=e2e / 4, decode_s=e2e * 3 / 4, e2e_s=e2e, decode_tok_s=tokens / e2e, preprocess_in_ttft=False,
                text="abcd", token_ids=[1, 2, 3, index],
                fairness=Fairness(ok=fair, violations=[] if fair else ["output_tokens 3 != max_new_tokens 4"]),
            )
            lines.append(record.model_dump_json())
            clock += e2e
    (run_dir / "results.jsonl").write_text("\n".join(lines) + "\n")
    write_manifest(run_dir, Manifest(
        created_at="now", command=["test"], scenario={"name": "synthetic"}, scenario_hash="s", workload_hash=workload,
        repeats=len(tok_s_per_repeat), seed=0, model={"path": "synthetic", "weights": {"sha256": "w", "method": "full"}},
        settings={"model_path": "synthetic", "dtype": "float32"}, environment=ENV,
        backends=[BackendOutcome(name="transformers", kind="transformers", options={}, status="ok")]))
    return run_dir


def test_snapshot_holds_repeat_level_samples_outputs_and_fingerprints(tmp_path):
    taken = snapshot_run(write_run(tmp_path / "run", [100.0, 200.0, 400.0]))
    samples = taken.backends["transformers"]
    assert samples.repeats == 3 and samples.metrics["output_tok_s"] == pytest.approx([100, 200, 400])
    assert samples.metrics["ttft_s_p90"] == pytest.approx([0.01, 0.005, 0.0025])
    assert samples.outputs["r2"] == [Output(token_ids=[1, 2, 3, 2], text="abcd")]
    assert taken.workload_hash == WORKLOAD and taken.environment == ENV


def test_baseline_save_then_gate_exit_codes_through_the_real_cli(tmp_path, benchbench_cli, monkeypatch):
    base = write_run(tmp_path / "base", noisy(100))
    same = write_run(tmp_path / "same", noisy(100, seed=1))
    slow = write_run(tmp_path / "slow", noisy(80, seed=2))
    other = write_run(tmp_path / "other", noisy(100), workload="b" * 64)
    saved = benchbench_cli("baseline", "save", str(base), "--to", str(tmp_path / "b.json"))
    assert saved.returncode == 0, saved.stderr

    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    rule = ("--baseline", str(tmp_path / "b.json"), "--rule", "output_tok_s: -5%")
    passed = benchbench_cli("gate", *rule, str(same))
    failed = benchbench_cli("gate", *rule, str(slow), "--junit", str(tmp_path / "junit.xml"))
    blocked = benchbench_cli("gate", *rule, str(other))
    assert (passed.returncode, failed.returncode, blocked.returncode) == (0, 1, 2)
    assert re.search(r"regression \(exit 1\): transformers output_tok_s: -5% -> -(19|20|21)\.\d% \[", failed.stdout)
    assert "bootstrap" in failed.stdout and "different workload" in blocked.stdout
    assert summary.read_text().count("### benchbench gate") == 3
    assert ET.parse(tmp_path / "junit.xml").getroot().find("testsuite").get("failures") == "1"


def test_baseline_save_refuses_an_unfair_run(tmp_path, benchbench_cli):
    run = write_run(tmp_path / "run", [100.0, 100.0, 100.0], unfair_repeat=1)
    result = benchbench_cli("baseline", "save", str(run), "--to", str(tmp_path / "b.json"))
    assert result.returncode == 2 and "unfair request" in result.stderr and "Traceback" not in result.stderr


def test_baseline_from_a_newer_benchbench_is_refused(tmp_path, benchbench_cli):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"schema_version": BASELINE_SCHEMA_VERSION + 1}))
    with pytest.raises(BenchError, match="newer than this benchbench"):
        load_baseline(path)
    run = write_run(tmp_path / "run", [100.0, 100.0, 100.0])
    result = benchbench_cli("gate", "--baseline", str(path), str(run))
    assert result.returncode == 2 and "upgrade benchbench" in result.stderr


def test_run_with_a_gates_file_lacking_a_baseline_fails_before_running(tmp_path, run_bench):
    gates = tmp_path / "gates.yaml"
    gates.write_text("rules: {fairness: must_pass}\n")
    result = run_bench("--gate", str(gates), "--output-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and "name the baseline" in result.stderr
    gates.write_text("baseline: nowhere.json\nrules: {fairness: must_pass}\n")
    result = run_bench("--gate", str(gates), "--output-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and "nowhere.json: no such file" in result.stderr
    assert not (tmp_path / "run").exists()


def test_markdown_summary_escapes_names_reasons_and_notes_from_the_run():
    hostile = "x\n# Injected heading\n<img src=x onerror=alert(1)>`"
    result = GateResult((Verdict(hostile, "fairness: must_pass", Status.REGRESSION, hostile),), (hostile,))
    text = markdown(result, f"base{hostile}.json", f"runs/{hostile}")
    assert [line for line in text.splitlines() if line.startswith("#")] == ["### benchbench gate: regression (exit 1)"]
    assert "<img" not in text and "&lt;img" in text
    assert all(line.count("|") - line.count("\\|") in (0, 7) for line in text.splitlines())
