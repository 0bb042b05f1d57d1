"""benchbench: fair, verified benchmarks of InternVL inference across engines.

The library API (``run``, ``resume``, ``report``, ``compare``, ``gate`` and their option types)
lives in ``benchbench.api`` and is imported on first use, so ``import benchbench`` stays cheap.
"""

__version__ = "0.1.0"

_API = ("run", "resume", "report", "compare", "gate", "RunOptions", "RunResult", "RunObserver")
__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    if name == "report":  # the subpackage, callable as the API function (see benchbench/report)
        import benchbench.report

        return benchbench.report
    if name in _API:
        from benchbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'benchbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
