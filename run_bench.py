#!/usr/bin/env python
"""Entry point: ``python run_bench.py --scenario 10x-image`` is ``benchbench run --scenario 10x-image``."""

from benchbench.cli import main

if __name__ == "__main__":
    main(["run", *__import__("sys").argv[1:]], prog_name="run_bench.py")
