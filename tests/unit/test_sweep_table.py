"""The sweep report's judgements over cells: which cells of one workload disagree, and the best
cell per engine under an objective (fair finished cells only, constraints respected)."""

from __future__ import annotations

import math

from benchbench.results.records import Fairness, RequestRecord
from benchbench.results.stats import Interval
from benchbench.sweep.cells import Cell, CellOutcome
from benchbench.sweep.spec import Objective
from benchbench.sweep.table import CellRow, best_per_engine, disagreements


def _cell(cell_id: str, workload: str) -> Cell:
    return Cell(id=cell_id, label=cell_id, assignments={}, scenario={}, model=None, device=None, trust_remote_code=False,
                gpus=0, cpus=1, timeout_s=None, workload_hash=workload)


def _answer(token_ids: list[int]) -> RequestRecord:
    return RequestRecord(
        backend="b", backend_kind="transformers", phase="measure", request_id="r", repeat=0, started_at=0.0, max_tiles=6,
        tiles_planned=1, tiles=1, image_tokens_planned=256, image_tokens=256, input_tokens=300, max_new_tokens=3,
        output_tokens=3, preprocess_s=0.1, ttft_s=0.1, decode_s=0.1, e2e_s=0.3, decode_tok_s=30.0, preprocess_in_ttft=False,
        text="x", token_ids=token_ids, fairness=Fairness(ok=True))


def _row(cell_id: str, kind: str = "transformers", workload: str = "w1", tok_s: float = 10.0, ttft_p99: float = 0.1,
         status: str = "ok", unfair: int = 0, answers: dict | None = None) -> CellRow:
    return CellRow(_cell(cell_id, workload), CellOutcome(status=status), kind, kind, status, 4, unfair,
                   {"output_tok_s": Interval(tok_s, math.nan, math.nan)}, {"output_tok_s": tok_s, "ttft_s_p99": ttft_p99},
                   {rid: _answer(ids) for rid, ids in (answers or {}).items()})


def test_cells_of_one_workload_whose_answers_differ_are_reported_with_the_first_divergence():
    rows = [_row("1", answers={"r0": [1, 2, 3], "r1": [4, 5, 6]}), _row("2", answers={"r0": [1, 2, 3], "r1": [4, 9, 6]}),
            _row("3", answers={"r0": [1, 2, 3], "r1": [4, 5, 6]}), _row("4", workload="w2", answers={"r0": [7]})]
    compared, found = disagreements(rows)
    assert compared == 2
    assert [(pair.reference.cell.id, pair.other.cell.id, pair.compared) for pair in found] == [("1", "2", 2)]
    assert {rid: c.first_divergence for rid, c in found[0].differing.items()} == {"r1": 1}


def test_best_cell_per_engine_meets_the_constraints_and_skips_unfair_or_failed_cells():
    rows = [_row("fast-but-slow-ttft", tok_s=50, ttft_p99=0.9), _row("unfair", tok_s=40, unfair=1),
            _row("failed", tok_s=45, status="failed"), _row("good", tok_s=30), _row("ok", tok_s=20, ttft_p99=0.05),
            _row("other", kind="lmdeploy", tok_s=5, ttft_p99=2.0)]
    objective = Objective(maximize="output_tok_s", subject_to=["ttft_s_p99 <= 0.5"])
    best = best_per_engine(rows, objective)
    assert best["transformers"].cell.id == "good"
    assert best["lmdeploy"] is None
    assert best_per_engine(rows, Objective(minimize="ttft_s_p99"))["transformers"].cell.id == "ok"
