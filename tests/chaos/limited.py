"""Run a program with a cap on the size of every file it writes (a disk that fills):
`python -m chaos.limited BYTES ARGV...` execs `python ARGV...` under RLIMIT_FSIZE, with
SIGXFSZ ignored so a write past the cap fails (EFBIG) instead of killing it."""

from __future__ import annotations

import os
import resource
import signal
import sys

if __name__ == "__main__":
    cap = int(sys.argv[1])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # ignored stays ignored across exec
    resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
