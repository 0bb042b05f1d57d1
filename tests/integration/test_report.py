"""The report built from real tiny-model runs: every section, rebuilds, escaping, flags, compare."""

from __future__ import annotations

import csv
import re

import pytest
from report_runs import MULTI_TURN, TILES_SWEEP, TWO_BACKENDS, diverge_first_answer, edited_copy, run_scenario

pytestmark = pytest.mark.slow

REPORT_FILES = ("report.md", "report.html", "summary.csv", "consistency.csv", "throughput.png",
                "latency_breakdown.png", "latency_cdf.png", "agreement.png")


@pytest.fixture(scope="module")
def two_backend_run(tmp_path_factory):
    return run_scenario(tmp_path_factory.mktemp("two"), TWO_BACKENDS)


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    return run_scenario(tmp_path_factory.mktemp("sweep"), TILES_SWEEP)


def _html_section(html: str, anchor: str) -> str:
    return html.split(f'<section id="{anchor}">', 1)[1].split("</section>", 1)[0]


def test_two_backend_report_shows_every_section(two_backend_run):
    html = (two_backend_run / "report.html").read_text()
    for anchor in ("checks", "headline", "latency", "fairness", "consistency", "resources", "environment"):
        assert f'<section id="{anchor}">' in html, anchor
    for name in REPORT_FILES:
        assert (two_backend_run / name).stat().st_size > 0, name
    markdown = (two_backend_run / "report.md").read_text()
    # Two repeats: Student's t with one degree of freedom, so the bounds can be far apart (0.01x to 30x).
    assert re.search(r"transformers-slow \d[\d.]*x \\\[\d[\d.]*, (\d[\d.]*|inf)\\\] vs transformers", markdown)
    assert "| transformers | " in markdown and "| repeats | 2 |" in markdown
    assert "Fair run" in _html_section(html, "checks")
    assert "python " in _html_section(html, "environment") and "benchbench run --scenario scenario.yaml" in html
    # throughput, latency breakdown, latency CDFs, agreement heatmap, host memory over time
    assert html.count("data:image/png;base64,") == 5 == markdown.count("![")
    assert "memory_over_time.png" in markdown


def test_rebuild_from_records_and_manifest_alone_is_byte_identical_but_for_the_generated_line(
    two_backend_run, tmp_path, benchbench_cli
):
    copy = edited_copy(two_backend_run, tmp_path / "copy")
    builds = []
    for attempt in range(2):
        result = benchbench_cli("report", str(copy))
        assert result.returncode == 0, result.stderr
        builds.append({name: (copy / name).read_bytes() for name in REPORT_FILES})
    first, second = builds
    for name in REPORT_FILES:
        if name.startswith("report."):
            differing = [(a, b) for a, b in zip(first[name].splitlines(), second[name].splitlines()) if a != b]
            assert len(first[name].splitlines()) == len(second[name].splitlines())
            assert all(b"Generated " in a and b"Generated " in b for a, b in differing), name
            assert len(differing) <= 1
        else:
            assert first[name] == second[name], name
    assert (copy / "report.md").read_bytes() == builds[1]["report.md"]


def test_markup_in_prompt_and_output_renders_as_text(two_backend_run, tmp_path, benchbench_cli):
    copy = edited_copy(two_backend_run, tmp_path / "copy", edit_record=diverge_first_answer)
    assert benchbench_cli("report", str(copy)).returncode == 0
    html = (copy / "report.html").read_text()
    assert "<script" not in html.lower() and "<b>" not in html
    assert "&lt;script&gt;alert(&#39;output&#39;)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(&#39;prompt&#39;)&lt;/script&gt;" in html
    assert "&lt;b&gt;briefly&lt;/b&gt;" in html
    markdown = (copy / "report.md").read_text()
    outside_code = re.sub(r"^```text\n.*?^```$", "", markdown, flags=re.S | re.M)
    assert "<script>alert('output')" in markdown and "<script" not in outside_code  # in Markdown, code blocks are text


def test_diverging_request_is_diffed_from_its_first_divergence(two_backend_run, tmp_path, benchbench_cli):
    copy = edited_copy(two_backend_run, tmp_path / "copy", edit_record=diverge_first_answer)
    assert benchbench_cli("report", str(copy)).returncode == 0
    consistency = _html_section((copy / "report.html").read_text(), "consistency")
    assert "r000 (repeat 0): first divergence at token 3" in consistency
    assert "<mark>" in consistency and "[999999]" in consistency
    rows = {row["request_id"]: row for row in csv.DictReader((copy / "consistency.csv").open())}
    assert rows["r000"]["exact_match"] == "False" and rows["r000"]["first_divergence"] == "3"
    assert rows["r001"]["exact_match"] == "True" and rows["r001"]["basis"] == "tokens"


def _flag_problems(manifest: dict) -> None:
    manifest["backends"][1]["load_info"]["stand_in"] = True
    failed = {**manifest["backends"][0], "name": "lmdeploy", "kind": "lmdeploy", "status": "failed", "load_info": {},
              "error": "BackendError: lmdeploy is not installed; pip install lmdeploy", "log_tail": ["ImportError: lmdeploy"]}
    manifest["backends"].append(failed)


def _short_answer(record: dict) -> None:
    if record["backend"] == "transformers" and record["request_id"] == "r001" and record["repeat"] == 1:
        record["output_tokens"] = 5
        record["fairness"] = {"ok": False, "violations": ["output_tokens 5 != max_new_tokens 8"], "unchecked": []}


def test_failure_violation_and_stand_in_are_flagged_before_any_number(two_backend_run, tmp_path, benchbench_cli):
    copy = edited_copy(two_backend_run, tmp_path / "copy", edit_record=_short_answer, edit_manifest=_flag_problems)
    assert benchbench_cli("report", str(copy)).returncode == 0
    html = (copy / "report.html").read_text()
    top = _html_section(html, "checks")
    assert html.index('<section id="checks">') < html.index('<section id="headline">')
    assert '<div class="note bad"><strong>Backend FAILED</strong>lmdeploy: BackendError' in top
    assert '<strong>Fairness violation</strong>transformers: 1 measured request(s) with output_tokens != max_new_tokens' in top
    assert "<strong>Stand-in</strong>transformers-slow (stand-in)" in top
    markdown = (copy / "report.md").read_text()
    table_rows = [line for line in markdown.splitlines() if line.startswith("| transformers-slow")]
    assert len(table_rows) >= 4 and all(row.startswith("| transformers-slow (stand-in) |") for row in table_rows)
    assert "**✖ 1**" in markdown  # the violations cell


def test_tiles_sweep_plots_throughput_and_ttft_against_tile_count(sweep_run):
    markdown = (sweep_run / "report.md").read_text()
    assert "## Tile sweep" in markdown and "![Throughput and TTFT against tile count](tiles_sweep.png)" in markdown
    sweep = markdown.split("## Tile sweep", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"\| transformers \| 1 \| 1 \| 256 \| 2 \|", sweep)
    assert re.search(r"\| transformers \| 4 \| ", sweep)
    assert "| requests | 4 |" in markdown  # one repeat: intervals over the 4 measured requests
    assert (sweep_run / "tiles_sweep.png").stat().st_size > 0


def test_compare_refuses_different_workloads_with_one_line(two_backend_run, sweep_run, tmp_path, benchbench_cli):
    result = benchbench_cli("compare", str(two_backend_run), str(sweep_run), "--output-dir", str(tmp_path / "cmp"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--allow-different-workloads" in result.stderr


def test_compare_labels_backends_by_run_and_takes_a_reference(two_backend_run, tmp_path, benchbench_cli):
    before, after = edited_copy(two_backend_run, tmp_path / "before"), edited_copy(two_backend_run, tmp_path / "after")
    out = tmp_path / "cmp"
    result = benchbench_cli("compare", str(before), str(after), "--output-dir", str(out), "--reference", "after/transformers")
    assert result.returncode == 0, result.stderr
    markdown = (out / "report.md").read_text()
    assert re.search(r"before/transformers-slow \d\.\d+x \\\[.*\\\] vs after/transformers", markdown)
    assert "| before/transformers vs after/transformers | token ids | 3 | ✔ 3 / 3 |" in markdown
    assert markdown.count("*before: run folder") == 1 and markdown.count("*after: run folder") == 1


def test_compare_with_allowed_different_workloads_says_so_at_the_top(two_backend_run, sweep_run, tmp_path, benchbench_cli):
    out = tmp_path / "cmp"
    result = benchbench_cli("compare", str(two_backend_run), str(sweep_run), "--output-dir", str(out),
                            "--allow-different-workloads")
    assert result.returncode == 0, result.stderr
    top = _html_section((out / "report.html").read_text(), "checks")
    assert "Different workloads" in top and "note bad" in top


def test_unknown_reference_is_a_one_line_error(two_backend_run, tmp_path, benchbench_cli):
    copy = edited_copy(two_backend_run, tmp_path / "copy")
    result = benchbench_cli("report", str(copy), "--reference", "lmdepoy")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --reference lmdepoy: no such backend; choose one of transformers, transformers-slow"


def test_scenario_printed_in_the_report_rebuilds_the_same_workload(two_backend_run, tmp_path):
    from benchbench.results.records import read_manifest
    from benchbench.config.scenario import load_scenario
    from benchbench.workload.build import build_workload

    markdown = (two_backend_run / "report.md").read_text()
    printed = markdown.split("*scenario.yaml*\n\n```text\n", 1)[1].split("\n```", 1)[0]
    (tmp_path / "scenario.yaml").write_text(printed)
    rebuilt = build_workload(load_scenario(str(tmp_path / "scenario.yaml")))
    assert rebuilt.hash == read_manifest(two_backend_run).workload_hash


def test_backends_differing_in_one_numeric_option_get_a_sweep_section(two_backend_run, tmp_path, benchbench_cli):
    def explicit_zero_delay(manifest: dict) -> None:
        manifest["backends"][0]["options"] = {"sleep_per_token_s": 0.0}

    copy = edited_copy(two_backend_run, tmp_path / "copy", edit_manifest=explicit_zero_delay)
    assert benchbench_cli("report", str(copy)).returncode == 0
    markdown = (copy / "report.md").read_text()
    assert "## Sweep over sleep\\_per\\_token\\_s" in markdown
    assert re.search(r"\| transformers \| 0\.0 \| .* \|\n\| transformers-slow \| 0\.004 \| ", markdown)
    assert (copy / "sweep_1.png").stat().st_size > 0


def test_multi_turn_report_shows_ttft_per_turn_with_the_longer_second_prompt(tmp_path_factory):
    markdown = (run_scenario(tmp_path_factory.mktemp("turns"), MULTI_TURN) / "report.md").read_text()
    turns = markdown.split("## Conversation turns", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"\| transformers \| (\d) \| 2 \| ([\d.,]+) \|", turns)
    assert [turn for turn, _ in rows] == ["1", "2"]
    assert float(rows[1][1].replace(",", "")) > float(rows[0][1].replace(",", ""))  # turn 2 carries turn 1 and its image again


def test_differing_outputs_are_flagged_among_the_checks(two_backend_run, tmp_path, benchbench_cli):
    copy = edited_copy(two_backend_run, tmp_path / "diverged", diverge_first_answer)
    assert benchbench_cli("report", str(copy)).returncode == 0
    checks = (copy / "report.md").read_text().split("## Headline", 1)[0]
    assert "**Outputs differ:** transformers vs transformers-slow:" in checks
    assert "Outputs differ" not in (two_backend_run / "report.md").read_text().split("## Headline", 1)[0]


def test_report_names_what_differs_between_backends_and_points_a_divergence_at_it(two_backend_run, tmp_path, benchbench_cli):
    markdown = (two_backend_run / "report.md").read_text()
    assert ("**What differs:** transformers-slow differs from transformers in: sleep\\_per\\_token\\_s None → 0.004; "
            "everything else is the same") in markdown
    assert "**Why:** transformers and transformers-slow gave identical outputs on all 3 requests" in markdown
    copy = edited_copy(two_backend_run, tmp_path / "diverged-why", diverge_first_answer)
    assert benchbench_cli("report", str(copy)).returncode == 0
    why = (copy / "report.md").read_text().split("**Why:** ", 1)[1].splitlines()[0]
    assert why.startswith("transformers and transformers-slow diverge on 1 of 3 requests; the first place to look is "
                          "what differs between them: sleep\\_per\\_token\\_s None → 0.004")
