"""Run a command; write its wall time, CPU time and peak memory as JSON.

    python benchmarks/measure.py OUT.json COMMAND...

run.py starts every measured command through this small process because on Linux a
child's ru_maxrss starts at its parent's resident size when it is spawned: a command
started straight from run.py (which holds a million vectors at one point) would report
run.py's memory. Here the parent is small, so ru_maxrss is the command's own (the
largest one process among it and its reaped children). stdin, stdout and stderr are
passed through; the exit status is the command's.
"""

import json
import os
import subprocess
import sys
import time

out, command = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
child = subprocess.Popen(command)
_pid, status, usage = os.wait4(child.pid, 0)
wall = time.perf_counter() - started
with open(out, "w") as handle:
    json.dump({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_mb": usage.ru_maxrss / 1024.0}, handle)
sys.exit(os.waitstatus_to_exitcode(status))
