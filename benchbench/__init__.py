"""benchbench: fair, verified benchmarks of InternVL inference across engines."""

__version__ = "0.1.0"
