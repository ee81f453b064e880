"""Child processes of the platform: they die with it, and a demo step stops when it is asked.

Services run in their own sessions so that Ctrl-C reaches only the supervisor, which stops
them in order. A demo step (`interpedia train`, `dashboards`, ...) runs in its own session
too, for the same reason: the demo passes each SIGINT/SIGTERM it gets on to the step exactly
once, so a terminal's Ctrl-C is the step's first signal (stop at a safe point, saving state)
and not, arriving twice, its second (quit at once).
"""

import ctypes
import signal
import subprocess
import sys
from collections.abc import Mapping

from interpedia_core import stopping


def die_with_parent() -> None:
    """In the child: receive SIGTERM when the supervisor dies, however it dies."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def run_step(command: list[str], env: Mapping[str, str]) -> int:
    """Run one demo step to its end and return its exit code; `Stopped` if it was stopped.

    The first SIGINT/SIGTERM is passed on and the step is waited for: it stops within
    seconds with its state saved, and `Stopped` follows. The second is passed on too (the
    step quits at once) and the demo unwinds with `KeyboardInterrupt`, which stops the
    database the demo started.
    """
    step = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=die_with_parent)

    def forward(signum: int) -> None:
        if step.poll() is None:
            step.send_signal(signum)

    def quit_now(signum: int) -> None:
        forward(signum)
        raise KeyboardInterrupt

    with stopping.stop_on_signals(on_second=quit_now) as token:
        token.on_request(lambda: forward(token.signum or signal.SIGTERM))
        code = step.wait()
    token.check()
    return code
