"""Which failures a job is retried for: a stop always (whatever its attempts), a domain
error never, anything else as the task's strategy says."""

import procrastinate
import pytest

from interpedia_core.errors import InvalidInput
from interpedia_core.stopping import Stopped
from interpedia_jobs.retry import ResumableRetry, ResumeOnlyWhenStopped, RetryUnlessRefused


def _job(attempts: int) -> procrastinate.jobs.Job:
    return procrastinate.jobs.Job(
        id=1, queue="q", lock=None, queueing_lock=None, task_name="t", attempts=attempts
    )


def _retried_in(strategy: procrastinate.BaseRetryStrategy, exc: Exception, attempts: int):
    decision = strategy.get_retry_decision(exception=exc, job=_job(attempts))
    return None if decision is None else decision.retry_at


@pytest.mark.parametrize(
    "strategy",
    [ResumableRetry(max_attempts=3, wait=5), RetryUnlessRefused(max_attempts=3, wait=5)],
    ids=["resumable", "unless-refused"],
)
def test_a_stopped_job_is_requeued_even_past_its_attempts(strategy) -> None:
    assert _retried_in(strategy, Stopped("stopped by SIGTERM"), attempts=10) is not None
    assert _retried_in(strategy, RuntimeError("database hiccup"), attempts=1) is not None
    assert _retried_in(strategy, RuntimeError("database hiccup"), attempts=3) is None


def test_a_refused_or_cancelled_job_is_not_retried() -> None:
    strategy = RetryUnlessRefused(max_attempts=3)
    assert _retried_in(strategy, InvalidInput("no such hook"), attempts=0) is None
    aborted = procrastinate.exceptions.JobAborted()
    assert _retried_in(strategy, aborted, attempts=0) is None
    assert _retried_in(ResumableRetry(max_attempts=3), InvalidInput("x"), attempts=0) is not None


def test_resume_only_when_stopped_retries_nothing_else() -> None:
    strategy = ResumeOnlyWhenStopped()
    assert _retried_in(strategy, Stopped(), attempts=5) is not None
    assert _retried_in(strategy, RuntimeError("the LLM answered 500"), attempts=0) is None
    assert _retried_in(strategy, InvalidInput("x"), attempts=0) is None
