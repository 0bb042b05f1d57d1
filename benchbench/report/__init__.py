"""Reports rebuilt from a run folder's records and manifest alone."""

import sys
import types

from benchbench.report.writer import write_comparison, write_report

__all__ = ["write_comparison", "write_report"]


class _ReportPackage(types.ModuleType):
    """The library API's ``benchbench.report(run_dir)`` shares this package's name, so the package
    answers the call: whichever of the two ``benchbench.report`` is bound to, calling it works."""

    def __call__(self, run_dir, reference=None):
        from benchbench.api import report

        return report(run_dir, reference)


sys.modules[__name__].__class__ = _ReportPackage
