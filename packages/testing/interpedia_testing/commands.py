"""A command run as a subprocess and stopped with a real signal, the way a user stops it.

`RunningCommand` collects the command's output as it comes (progress bars redraw with
`\\r`, so it reads bytes, not lines), waits for progress, sends SIGINT or SIGTERM and
measures how long the command took to exit after it. Stop tests assert that bound
generously (the contract is "within seconds", on a shared, loaded CPU) and then check
what the stopped command left behind.
"""

import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class RunningCommand:
    """`args` started in its own session, its stdout and stderr collected together."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], cwd: Path | None = None):
        self.args = list(args)
        self.process = subprocess.Popen(
            self.args,
            env=dict(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a signal to the test's group never reaches it
        )
        self._chunks: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        while chunk := self.process.stdout.read1(65536):
            self._chunks.append(chunk.decode(errors="replace"))

    @property
    def output(self) -> str:
        return "".join(self._chunks)

    def tail(self, chars: int = 4000) -> str:
        return f"$ {' '.join(self.args)}\n...{self.output[-chars:]}"

    def wait_until(self, ready: Callable[[], object], what: str, timeout: float) -> object:
        """Poll `ready()` until it returns something truthy; fail if the command ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = ready()
            if value:
                return value
            if self.process.poll() is not None:
                raise AssertionError(
                    f"exited ({self.process.returncode}) before {what}:\n{self.tail()}"
                )
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}:\n{self.tail()}")

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of `pattern` in the output, once it appears."""
        match = self.wait_until(lambda: re.search(pattern, self.output), pattern, timeout)
        assert isinstance(match, re.Match)
        return match

    def stop(self, signum: int = signal.SIGINT, timeout: float = 120) -> tuple[int, float]:
        """Send `signum`; return the exit code and the seconds from the signal to the exit."""
        sent = time.monotonic()
        self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running {timeout:.0f}s after {signum!r}") from None
        elapsed = time.monotonic() - sent
        self._reader.join(timeout=10)
        return code, elapsed

    def finish(self, timeout: float) -> int:
        """Wait for the command to end by itself; its exit code."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"did not finish within {timeout:.0f}s:\n{self.tail()}") from None
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
