"""Running a workload: the clock (runner), worker processes, isolation, launched servers."""
