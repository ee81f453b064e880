"""Stopping long work promptly and resumably: the first Ctrl-C or SIGTERM asks, the second forces.

Training, dashboards, explaining and importing run as CLI commands and as worker jobs, in
the main thread, in worker threads and as asyncio tasks. They stop the same way:

- A `StopToken` is a flag set once: by a signal (`stop_on_signals`), by a worker shutting
  down, or by a job being cancelled.
- The token of the running command or job is ambient, like asyncio cancellation: it lives
  in a `ContextVar`, which asyncio tasks and `asyncio.to_thread` inherit, so the loops deep
  inside (between training steps, model batches, features, files) call `check()` at their
  safe points without every function on the way passing a token along.
- `check()` raises `Stopped` there. Work with state to keep catches it, saves (a training
  checkpoint, the dashboards pass so far, an import's status) and re-raises; rerunning the
  same command resumes from what was saved.
- Async work whose current step may be abandoned (an LLM call, a database transaction) runs
  under `until_stopped`, which cancels it on a stop: its transaction rolls back.
- The second signal exits at once (`os._exit`): it waits for nothing, not even threads still
  producing (an activation producer, a download), so a stuck step can always be escaped.
"""

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(Exception):
    """The work stopped at a safe point because a stop was requested; rerun it to resume.

    Not an `InterpediaError`: the command did nothing wrong, and a job stopped by its
    worker shutting down must be retried (`interpedia_jobs.retry`), not refused.
    """

    def __init__(self, reason: str = "stop requested", exit_code: int = 130) -> None:
        super().__init__(reason)
        self.exit_code = exit_code  # 128 + the signal's number, as shells report it

    def at(self, where: str) -> "Stopped":
        """The same stop, its message saying where the work stopped and what it kept."""
        return Stopped(f"{self} {where}", self.exit_code)


class StopToken:
    """A stop request, set once from any thread (or a signal handler), seen by all.

    A child token (`child()`) is requested with its parent, and can also be requested
    alone: a cancelled job stops its own thread without stopping the worker.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self.reason = ""
        self.signum: int | None = None  # the signal that asked, if one did

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as shells report a command a signal ended (130: SIGINT)."""
        return 128 + (self.signum or signal.SIGINT)

    def request(self, reason: str = "stop requested", signum: int | None = None) -> None:
        """Ask the work to stop at its next safe point (idempotent; signal-handler safe)."""
        if self._event.is_set():
            return
        self.reason, self.signum = reason, signum
        self._event.set()
        for callback in list(self._callbacks):
            callback()

    def check(self) -> None:
        """Raise `Stopped` if a stop was requested."""
        if self._event.is_set():
            raise Stopped(self.reason, self.exit_code)

    def on_request(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback()` when the stop is requested (now, if it already was).

        It runs in the requesting thread, possibly inside a signal handler: keep it short
        and non-blocking. Returns a function that unregisters it.
        """
        self._callbacks.append(callback)
        if self._event.is_set():
            callback()

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return remove

    @contextlib.contextmanager
    def child(self) -> Iterator["StopToken"]:
        """A token requested whenever this one is (while the block runs), and on its own."""
        child = StopToken()
        forget = self.on_request(lambda: child.request(self.reason, self.signum))
        try:
            yield child
        finally:
            forget()  # a worker's token outlives thousands of jobs' children

    async def wait(self) -> None:
        """Return once the stop is requested (from any thread)."""
        loop = asyncio.get_running_loop()
        woken = loop.create_future()

        def wake() -> None:
            loop.call_soon_threadsafe(lambda: woken.done() or woken.set_result(None))

        remove = self.on_request(wake)
        try:
            await woken
        finally:
            remove()


_current: ContextVar[StopToken | None] = ContextVar("interpedia_stop_token", default=None)


def current() -> StopToken | None:
    """The token of the command or job this code runs in, if any."""
    return _current.get()


def check() -> None:
    """Raise `Stopped` if the current command or job was asked to stop (a safe point)."""
    token = _current.get()
    if token is not None:
        token.check()


@contextlib.contextmanager
def stop_scope(token: StopToken) -> Iterator[StopToken]:
    """Make `token` the current one for the block (and the tasks and threads it starts)."""
    reset = _current.set(token)
    try:
        yield token
    finally:
        _current.reset(reset)


def _say(text: str) -> None:
    # os.write, not print: a handler may interrupt a print to the same stream.
    with contextlib.suppress(OSError):
        os.write(2, text.encode())


@contextlib.contextmanager
def stop_on_signals(
    on_second: Callable[[int], None] | None = None,
) -> Iterator[StopToken]:
    """The block's work stops on the first SIGINT/SIGTERM; the second exits the process now.

    The first signal requests the stop (the work finishes or abandons its current step,
    saves, and raises `Stopped`). The second calls `on_second(signum)` if given, then exits
    with 128 + its number without waiting for anything; an `on_second` that raises unwinds
    instead (the demo does, to stop the database it started). Signals reach only the main
    thread: elsewhere the block runs under a token nothing but its own code can request.
    """
    token = StopToken()
    if threading.current_thread() is not threading.main_thread():
        with stop_scope(token):
            yield token
        return
    received = 0

    def handle(signum: int, _frame: object) -> None:
        nonlocal received
        received += 1
        name = signal.Signals(signum).name
        if received == 1:
            token.request(f"stopped by {name}", signum)
            _say(f"\n{name}: stopping after the current step (again to quit at once)\n")
            return
        _say(f"\n{name} again: quitting at once\n")
        if on_second is not None:
            on_second(signum)
        os._exit(128 + signum)

    previous = {signum: signal.signal(signum, handle) for signum in _SIGNALS}
    try:
        with stop_scope(token):
            yield token
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


async def to_thread(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`asyncio.to_thread` whose thread stops when the awaiting task is cancelled.

    The thread runs under a child of the current token: a stop request reaches it as
    usual, and cancelling the task that awaits it (a job cancelled, a command unwinding)
    requests the child, so the thread ends at its next safe point rather than running
    on unobserved.
    """
    parent = _current.get()
    with parent.child() if parent is not None else contextlib.nullcontext(StopToken()) as token:

        def scoped() -> T:
            with stop_scope(token):
                return function(*args, **kwargs)

        try:
            return await asyncio.to_thread(scoped)
        except asyncio.CancelledError:
            token.request("cancelled")
            raise


async def until_stopped(awaitable: Awaitable[T]) -> T:
    """Await `awaitable`; if a stop is requested first, cancel it and raise `Stopped`.

    For async work whose current step may be abandoned: a cancelled database transaction
    rolls back, so what was committed before is all that remains. Without a current token
    this is a plain `await`.
    """
    token = _current.get()
    work = asyncio.ensure_future(awaitable)
    if token is None:
        return await work
    stop = asyncio.ensure_future(token.wait())
    abandoned = False
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not work.done():
            work.cancel()
            abandoned = True
            # Let it unwind (roll back) before saying it stopped; how it ended is the stop.
            await asyncio.gather(work, return_exceptions=True)
    if abandoned:
        token.check()
    return work.result()
