"""qbsd: musical query by semantic description (Qin et al.), as a command-line tool."""

import os as _os

# numpy's OpenBLAS would start a thread per core in every process and keep them spinning
# between calls. qbsd parallelises with processes (--jobs, one core each), so each gets one
# BLAS thread: measured, this cut `qbsd tag`'s CPU time by ~40% (benchmarks/). It must be
# set before numpy is imported; a value in the environment wins.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
