"""How jobs are retried: a stopped job always, a transient failure a few times, a refusal never.

A worker shutting down (SIGTERM from docker, a supervisor, Ctrl-C) asks its jobs to stop;
they save their state and raise `Stopped` (`interpedia_core.stopping`). Procrastinate then
records the job as failed unless the task's retry strategy retries it, and counts the stop
as an attempt: with a plain `RetryStrategy(max_attempts=3)` a long job whose workers are
restarted three times would fail for good. These strategies put a stopped job straight
back in the queue whatever its attempts, to resume on the next worker that takes it.
"""

import procrastinate

from interpedia_core.errors import InterpediaError
from interpedia_core.stopping import Stopped


def _resume_if_stopped(exception: BaseException) -> procrastinate.RetryDecision | None:
    if isinstance(exception, Stopped):
        return procrastinate.RetryDecision(retry_in={"seconds": 0})
    return None


class ResumeOnlyWhenStopped(procrastinate.BaseRetryStrategy):
    """No retries, except that a job stopped by its worker is requeued at once, to resume.

    For tasks whose failures are retried inside (autointerp's LLM calls by the SDK) and
    whose status says why they failed: deferring such a job again is the user's call.
    """

    def get_retry_decision(
        self, *, exception: BaseException, job: procrastinate.jobs.Job
    ) -> procrastinate.RetryDecision | None:
        return _resume_if_stopped(exception)


class ResumableRetry(procrastinate.RetryStrategy):
    """`RetryStrategy`, plus: a job stopped by its worker is requeued at once, always."""

    def get_retry_decision(
        self, *, exception: BaseException, job: procrastinate.jobs.Job
    ) -> procrastinate.RetryDecision | None:
        return _resume_if_stopped(exception) or super().get_retry_decision(
            exception=exception, job=job
        )


class RetryUnlessRefused(ResumableRetry):
    """Retry what may pass (a database hiccup, a crash), not a domain error: it would repeat;
    nor a job a user cancelled (procrastinate's `JobAborted`).

    A plain `RetryStrategy` retries every exception, so a bad hook or a missing source
    would load the model and fail three times over.
    """

    def get_retry_decision(
        self, *, exception: BaseException, job: procrastinate.jobs.Job
    ) -> procrastinate.RetryDecision | None:
        if isinstance(exception, InterpediaError | procrastinate.exceptions.JobAborted):
            return None
        return super().get_retry_decision(exception=exception, job=job)
