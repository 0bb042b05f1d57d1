"""Per-backend aggregates of measured records (warmups never enter)."""

from __future__ import annotations

import pandas as pd

from benchbench.results.records import RequestRecord, to_dataframe

TIMINGS = ("preprocess_s", "ttft_s", "decode_s", "e2e_s", "decode_tok_s")


def measured_frame(records: list[RequestRecord]) -> pd.DataFrame:
    frame = to_dataframe(records)
    return frame[frame["phase"] == "measure"] if not frame.empty else frame


def repeat_throughput(measured: pd.DataFrame) -> pd.DataFrame:
    """One row per (backend, repeat): wall span from the first request's start to the last one's end."""
    ends = measured["started_at"] + measured["e2e_s"]
    grouped = measured.assign(end=ends).groupby(["backend", "repeat"], sort=False)
    frame = grouped.agg(
        requests=("request_id", "size"),
        output_tokens=("output_tokens", "sum"),
        first_start=("started_at", "min"),
        last_end=("end", "max"),
    ).reset_index()
    frame["span_s"] = frame["last_end"] - frame["first_start"]
    frame["req_s"] = frame["requests"] / frame["span_s"]
    frame["output_tok_s"] = frame["output_tokens"] / frame["span_s"]
    return frame.drop(columns=["first_start", "last_end"])


def summarize(records: list[RequestRecord]) -> pd.DataFrame:
    """One row per backend: counts, throughput (mean over repeats), mean/median/p90 of each timing."""
    measured = measured_frame(records)
    if measured.empty:
        return pd.DataFrame(columns=["backend", "requests"])
    throughput = repeat_throughput(measured).groupby("backend", sort=False)[["req_s", "output_tok_s"]].mean()
    rows = []
    for backend, group in measured.groupby("backend", sort=False):
        row = {
            "backend": backend,
            "requests": len(group),
            "repeats": group["repeat"].nunique(),
            "unfair_requests": int((~group["fair"]).sum()),
            "req_s": throughput.loc[backend, "req_s"],
            "output_tok_s": throughput.loc[backend, "output_tok_s"],
        }
        for timing in TIMINGS:
            values = group[timing].dropna()
            row[f"{timing}_mean"] = values.mean() if len(values) else None
            row[f"{timing}_median"] = values.median() if len(values) else None
            row[f"{timing}_p90"] = values.quantile(0.9) if len(values) else None
        rows.append(row)
    return pd.DataFrame(rows)
