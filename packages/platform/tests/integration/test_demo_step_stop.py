"""Ctrl-C of the demo reaches its running step once: the step stops with its state saved.

The step here is a stand-in that stops the way every Interpedia command does
(`stop_on_signals`): it reports each signal it gets, "saves" on the first and ends.
"""

import os
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from interpedia_core import stopping
from interpedia_platform.children import run_step

STEP = textwrap.dedent("""
    import signal, sys, time
    from pathlib import Path
    from interpedia_core import stopping

    log = Path(sys.argv[1])
    with stopping.stop_on_signals() as token:
        token.on_request(lambda: log.write_text(log.read_text() + "stop requested\\n"))
        log.write_text("running\\n")
        try:
            while True:
                stopping.check()
                time.sleep(0.05)
        except stopping.Stopped as exc:
            time.sleep(0.5)  # saving a checkpoint
            log.write_text(log.read_text() + "saved\\n")
            sys.exit(exc.exit_code)
""")


def _signal_when_running(log: Path, signals: list[int], sent: list[float]) -> threading.Thread:
    """Send this process (the demo) `signals` once the step runs, as a terminal's Ctrl-C would."""

    def send() -> None:
        deadline = time.monotonic() + 300
        while not (log.exists() and "running" in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for signum in signals:
            sent.append(time.monotonic())
            os.kill(os.getpid(), signum)
            time.sleep(0.3)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_the_first_signal_stops_the_step_once_and_the_demo_waits_for_it(tmp_path: Path) -> None:
    log = tmp_path / "step.log"
    script = tmp_path / "step.py"
    script.write_text(STEP)
    sender = _signal_when_running(log, [signal.SIGINT], [])
    with pytest.raises(stopping.Stopped, match="stopped by SIGINT"):
        run_step([sys.executable, str(script), str(log)], os.environ)
    sender.join(timeout=10)
    assert log.read_text() == "running\nstop requested\nsaved\n"  # one signal, state saved


def test_the_second_signal_ends_the_step_and_the_demo_at_once(tmp_path: Path) -> None:
    log = tmp_path / "step.log"
    script = tmp_path / "step.py"
    script.write_text(STEP.replace("time.sleep(0.5)  # saving", "time.sleep(60)  # saving"))
    sent: list[float] = []
    sender = _signal_when_running(log, [signal.SIGTERM, signal.SIGTERM], sent)
    with pytest.raises(KeyboardInterrupt):  # the demo unwinds to stop its database
        run_step([sys.executable, str(script), str(log)], os.environ)
    assert time.monotonic() - sent[-1] < 10  # not the step's 60 s of saving
    sender.join(timeout=10)
    steps = [p for p in psutil.Process().children() if str(script) in p.cmdline()]
    _, alive = psutil.wait_procs(steps, timeout=10)
    assert not alive and "saved" not in log.read_text()  # the step quit too, unsaved
