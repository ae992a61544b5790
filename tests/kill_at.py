"""Train, and SIGKILL this process right after a chosen checkpoint file is written.

    python tests/kill_at.py FILE STEP -- <attnmt train arguments>

FILE is one of weights, state, best, latest; STEP the checkpoint step. Used by the
fault-injection test: the file is written completely (atomically), then the process
dies before the next one, as a power cut or an OOM kill would leave it.
"""

import os
import signal
import sys

from attnmt import rundir
from attnmt.cli import main

point, step = sys.argv[1], int(sys.argv[2])
names = {"weights": f"step-{step:07d}.safetensors", "state": f"step-{step:07d}.train.pt",
         "best": "best.json", "latest": "latest.json"}
real = rundir.atomic_write
seen_step = False


def atomic_write_then_die(path, write):
    global seen_step
    real(path, write)
    seen_step = seen_step or path.name == names["weights"]
    if seen_step and path.name == names[point]:
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    rundir.atomic_write = atomic_write_then_die
    main(sys.argv[sys.argv.index("--") + 1:])
