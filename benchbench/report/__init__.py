"""Reports rebuilt from a run folder's records and manifest alone."""

from benchbench.report.writer import write_report

__all__ = ["write_report"]
