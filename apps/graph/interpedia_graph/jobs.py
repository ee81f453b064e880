"""Graph jobs on the shared queue (queue `graph`, namespace `graph`).

They run only on graph workers (`interpedia-graph worker`, in the graph service's own
environment): the main environment's workers cannot import circuit-tracer, so they take
only the queues of the tasks they know. A graph worker runs one job at a time; the
replacement model is built once per worker and transcoder set and kept in the worker's
cache. The task is safe to run twice (see `generation`).

A worker asked to stop (SIGTERM, Ctrl-C: `interpedia_core.stopping`, as every worker) stops
its graph at the next attribution batch and raises `Stopped`; the retry strategy requeues
it at once for the next graph worker, instead of the worker waiting minutes for the graph.
"""

import asyncio
import logging

import procrastinate
from procrastinate.job_context import AbortReason

from interpedia_core import stopping
from interpedia_core.errors import InterpediaError
from interpedia_graph import generation
from interpedia_graph.replacement import ReplacementModels
from interpedia_graph.settings import GraphSettings
from interpedia_graph.transcoder_sets import find_transcoder_set
from interpedia_jobs.progress import ThreadProgress, report_progress
from interpedia_jobs.retry import RetryUnlessRefused
from interpedia_jobs.worker import WorkerResources, resources_of

logger = logging.getLogger(__name__)
blueprint = procrastinate.Blueprint()


# Retries cover a dead worker or a database hiccup; a refusal or a cancel is final.
RETRY = RetryUnlessRefused(max_attempts=3, wait=5)


def _models(resources: WorkerResources) -> ReplacementModels:
    """The worker's replacement models, built on first use (settings read once)."""
    if "graph:models" not in resources.cache:
        resources.cache["graph:models"] = ReplacementModels(GraphSettings().device)
    return resources.cache["graph:models"]


@blueprint.task(name="generate_graph", queue=generation.QUEUE, pass_context=True, retry=RETRY)
async def generate_graph(context: procrastinate.JobContext, request: dict) -> None:
    """Trace the attribution graph of a checked request and store it."""
    resources = resources_of(context)
    job_id = context.job.id
    graph_request = generation.GraphRequest.from_json(request)
    reporter = ThreadProgress(context, resources.sessionmaker)

    def progress(done: int, total: int | None, message: str = "") -> None:
        stopping.check()  # the worker's stop, a safe point between attribution batches
        reporter(done, total, message)

    async with resources.sessionmaker() as session:
        if await generation.stored_by_job(session, graph_request, job_id) is not None:
            logger.info("job %s: its graph was stored by an earlier attempt", job_id)
            return
        record = await find_transcoder_set(
            session, graph_request.model_id, graph_request.transcoder_set, None
        )
    try:
        await stopping.to_thread(progress, 0, None, "loading the model and transcoders")
        model = await stopping.to_thread(
            _models(resources).get, graph_request.model_id, record.folder
        )
        document = await stopping.to_thread(generation.make_graph, model, graph_request, progress)
        async with resources.sessionmaker.begin() as session:
            graph = await generation.store(session, graph_request, document, job_id)
            await report_progress(
                session,
                job_id,
                done=1,
                total=1,
                message="stored",
                details={"graph_id": graph.id, "n_nodes": graph.n_nodes, "n_links": graph.n_links},
            )
    except (procrastinate.exceptions.JobAborted, asyncio.CancelledError):
        # Cancelled by a user (or the worker shutting down): the attribution thread stops
        # at its next batch. A user's cancel ends the job; a shutdown's leaves it retried.
        reporter.stop()
        if context.abort_reason() == AbortReason.SHUTDOWN:
            raise
        await _note(resources, job_id, "cancelled")
        raise procrastinate.exceptions.JobAborted(f"job {job_id} was cancelled") from None
    except stopping.Stopped:
        await _note(resources, job_id, "stopped with its worker: queued again")
        raise
    except InterpediaError as exc:
        await _note(resources, job_id, f"failed: {exc.message}")
        raise
    except Exception as exc:  # retried; its text stays in the worker's log
        await _note(resources, job_id, f"failed: {type(exc).__name__} (see the worker log)")
        raise


async def _note(resources: WorkerResources, job_id: int, message: str) -> None:
    """Leave why the job stopped where `GET /v1/jobs/{id}` shows it."""
    async with resources.sessionmaker.begin() as session:
        await report_progress(session, job_id, done=0, total=None, message=message[:2000])
