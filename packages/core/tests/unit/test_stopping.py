"""The stop mechanism: a request reaches loops, tasks and threads; signals request it."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from interpedia_core import stopping


def test_check_raises_only_once_a_stop_is_requested() -> None:
    token = stopping.StopToken()
    with stopping.stop_scope(token):
        stopping.check()
        token.request("stopped by test", signal.SIGTERM)
        with pytest.raises(stopping.Stopped, match="stopped by test") as raised:
            stopping.check()
    assert raised.value.exit_code == 128 + signal.SIGTERM
    stopping.check()  # outside the scope nothing is stopping


def test_a_child_stops_with_its_parent_but_not_the_other_way() -> None:
    parent = stopping.StopToken()
    with parent.child() as alone, parent.child() as follower:
        alone.request("cancelled")
        assert alone.requested and not parent.requested and not follower.requested
        parent.request("stopped by SIGINT", signal.SIGINT)
        assert follower.requested and follower.reason == "stopped by SIGINT"
    with parent.child() as late:
        assert late.requested  # a child of a stopped token is stopped
    assert parent._callbacks == []  # children forget their parent when their block ends


async def test_until_stopped_cancels_the_work_and_lets_it_unwind() -> None:
    token = stopping.StopToken()
    unwound = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            unwound.set()  # where a transaction would roll back

    with stopping.stop_scope(token):
        asyncio.get_running_loop().call_later(0.05, token.request, "stopped by test")
        with pytest.raises(stopping.Stopped):
            await asyncio.wait_for(stopping.until_stopped(work()), timeout=10)
    assert unwound.is_set()


async def test_until_stopped_stops_a_gather_of_many_units() -> None:
    token = stopping.StopToken()
    slots = asyncio.Semaphore(1)

    async def unit() -> None:
        async with slots:  # the rest wait here, as the batch's units do
            await asyncio.sleep(60)

    with stopping.stop_scope(token):
        asyncio.get_running_loop().call_later(0.05, token.request, "stopped by test")
        with pytest.raises(stopping.Stopped):
            await stopping.until_stopped(asyncio.gather(*(unit() for _ in range(3))))


async def test_until_stopped_without_a_token_just_awaits() -> None:
    assert await stopping.until_stopped(asyncio.sleep(0, result=7)) == 7


async def test_a_thread_stops_when_the_task_awaiting_it_is_cancelled() -> None:
    started, left = threading.Event(), threading.Event()

    def loop() -> None:
        started.set()
        try:
            while True:
                stopping.check()
                time.sleep(0.01)
        finally:
            left.set()

    task = asyncio.ensure_future(stopping.to_thread(loop))
    await asyncio.to_thread(started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(left.wait, 10)


def test_the_first_signal_requests_a_stop_and_the_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with stopping.stop_on_signals() as token:
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not token.requested and time.monotonic() < deadline:
            time.sleep(0.01)
        assert token.requested and token.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


SECOND_SIGNAL = textwrap.dedent("""
    import threading, time
    from interpedia_core import stopping

    # A producer that never ends, as a stuck download would be: the exit must not wait.
    threading.Thread(target=lambda: time.sleep(600)).start()
    with stopping.stop_on_signals():
        print("ready", flush=True)
        time.sleep(600)  # ignores the first signal's request: only the second ends it
""")


def test_the_second_signal_exits_at_once_without_waiting_for_threads() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SECOND_SIGNAL], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    assert process.poll() is None  # the first only asks
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 128 + signal.SIGINT
