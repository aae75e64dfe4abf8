"""Runs the ``cnnlab`` command with the tiny test model registered, as a subprocess of the tests.

With CNNLAB_TEST_KILL_AT_STEP=N the process sends itself a signal right after its N-th optimizer step
(SIGKILL, or the one named by CNNLAB_TEST_SIGNAL, e.g. INT for Ctrl-C): an interruption at a known point.
"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from torch.optim.optimizer import register_optimizer_step_post_hook  # noqa: E402

from _tiny import register_tiny  # noqa: E402
from cnnlab.cli import main  # noqa: E402


def _signal_after(steps: int, sig: signal.Signals) -> None:
    done = {"steps": 0}

    def hook(optimizer, args, kwargs) -> None:
        done["steps"] += 1
        if done["steps"] == steps:
            os.kill(os.getpid(), sig)

    register_optimizer_step_post_hook(hook)


if __name__ == "__main__":
    register_tiny()
    if os.environ.get("CNNLAB_TEST_KILL_AT_STEP"):
        sig = signal.Signals["SIG" + os.environ.get("CNNLAB_TEST_SIGNAL", "KILL")]
        _signal_after(int(os.environ["CNNLAB_TEST_KILL_AT_STEP"]), sig)
    sys.exit(main(sys.argv[1:]))
