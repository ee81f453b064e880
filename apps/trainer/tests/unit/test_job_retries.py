"""Trainer jobs retry what may pass (a crash, a database hiccup), never a refused input."""

import pytest
from procrastinate.jobs import Job

from interpedia_core.errors import InvalidInput, NotFound
from interpedia_trainer.jobs import RETRY


def _job(attempts: int) -> Job:
    return Job(
        id=1, queue="trainer", lock=None, queueing_lock=None, task_name="t", attempts=attempts
    )


@pytest.mark.parametrize("error", [InvalidInput("unknown hook"), NotFound("no source 1-x")])
def test_a_domain_error_fails_the_job_at_once(error) -> None:
    assert RETRY.get_retry_decision(exception=error, job=_job(0)) is None


def test_an_unexpected_error_is_retried_until_the_attempts_run_out() -> None:
    decision = RETRY.get_retry_decision(exception=ConnectionError("reset"), job=_job(0))
    assert decision is not None and decision.retry_at is not None
    assert RETRY.get_retry_decision(exception=ConnectionError("reset"), job=_job(3)) is None
