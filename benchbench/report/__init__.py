"""Reports rebuilt from a run folder's records and manifest alone."""

from benchbench.report.writer import write_comparison, write_report

__all__ = ["write_comparison", "write_report"]
