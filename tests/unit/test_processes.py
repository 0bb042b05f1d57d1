"""Ending a process group for sure: what ignores SIGTERM gets SIGKILL, children go with their leader."""

import subprocess
import sys
import time

from benchbench.execution.processes import group_members, stop_group

STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
print("ready", flush=True)
time.sleep(60)
"""


def test_a_group_ignoring_sigterm_is_killed_after_the_grace_period_children_included():
    leader = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, start_new_session=True, text=True)
    try:
        assert leader.stdout.readline().strip() == "ready"
        assert len(group_members(leader.pid)) == 2
        started = time.monotonic()
        stop_group(leader.pid, grace_s=0.5, leader=leader)
        assert time.monotonic() - started >= 0.5  # the grace period was given
        assert group_members(leader.pid) == [] and leader.returncode == -9
    finally:
        leader.kill()
        leader.wait()
        leader.stdout.close()

