"""A first report: summary and fairness tables, a throughput plot; Markdown and self-contained HTML."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from benchbench.records import read_manifest, read_records  # noqa: E402
from benchbench.summary import measured_frame, summarize  # noqa: E402

SUMMARY_COLUMNS = ["backend", "requests", "unfair_requests", "req_s", "output_tok_s",
                   "preprocess_s_median", "ttft_s_median", "decode_tok_s_median", "e2e_s_median", "e2e_s_p90"]


def write_report(run_dir: Path) -> Path:
    """Write summary.csv, throughput.png, report.md and report.html into the run folder."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    records = read_records(run_dir)
    summary = summarize(records)
    summary.to_csv(run_dir / "summary.csv", index=False, float_format="%.6g")
    plot = _throughput_plot(summary, run_dir / "throughput.png")
    fairness = _fairness_table(records)
    sections = [
        ("Summary (measured requests only; warmups excluded)", summary.reindex(columns=SUMMARY_COLUMNS)),
        ("Fairness", fairness),
    ]
    failed = [b for b in manifest.backends if b.status == "failed"]
    title = f"benchbench report: {manifest.scenario['name']}"
    (run_dir / "report.md").write_text(_markdown(title, manifest, sections, failed, plot), encoding="utf-8")
    (run_dir / "report.html").write_text(_html(title, manifest, sections, failed, plot), encoding="utf-8")
    return run_dir / "report.html"


def _fairness_table(records) -> pd.DataFrame:
    measured = measured_frame(records)
    warmups = pd.Series([r.backend for r in records if r.phase == "warmup"], dtype=object).value_counts()
    rows = []
    for backend, group in measured.groupby("backend", sort=False):
        rows.append({
            "backend": backend,
            "warmups_excluded": int(warmups.get(backend, 0)),
            "tokens_requested": int(group["max_new_tokens"].sum()),
            "tokens_produced": int(group["output_tokens"].sum()),
            "tiles_planned": int(group["tiles_planned"].sum()),
            "tiles_used": int(group["tiles"].sum()) if group["tiles"].notna().all() else None,
            "preprocess_in_ttft": bool(group["preprocess_in_ttft"].iloc[0]),
            "violations": int((~group["fair"]).sum()),
        })
    return pd.DataFrame(rows)


def _throughput_plot(summary: pd.DataFrame, path: Path) -> Path | None:
    if summary.empty:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    ax.bar(summary["backend"], summary["output_tok_s"], color="#4C72B0")
    ax.set_ylabel("output tokens / s")
    ax.set_title("Throughput (measured requests)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _markdown(title, manifest, sections, failed, plot) -> str:
    lines = [f"# {title}", ""]
    for outcome in failed:
        lines += [f"> **FAILED: backend {outcome.name}**: {outcome.error}", ""]
    lines += [f"Workload hash `{manifest.workload_hash[:16]}`, model `{manifest.model['path']}`", ""]
    for heading, table in sections:
        lines += [f"## {heading}", "", table.to_markdown(index=False, floatfmt=".4g") if not table.empty else "(no records)", ""]
    if plot:
        lines += [f"![throughput]({plot.name})", ""]
    return "\n".join(lines)


def _html(title, manifest, sections, failed, plot) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for outcome in failed:
        body.append(f'<p class="bad">FAILED: backend {html.escape(outcome.name)}: {html.escape(outcome.error or "")}</p>')
    for heading, table in sections:
        body.append(f"<h2>{html.escape(heading)}</h2>")
        body.append(table.to_html(index=False, float_format=lambda v: f"{v:.4g}", escape=True, na_rep="n/a"))
    if plot:
        encoded = base64.b64encode(plot.read_bytes()).decode()
        body.append(f'<img alt="throughput" src="data:image/png;base64,{encoded}">')
    style = "body{font-family:sans-serif;margin:2em} table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:4px} .bad{color:#b00;font-weight:bold}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"
