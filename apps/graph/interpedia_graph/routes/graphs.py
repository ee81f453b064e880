"""Our own routes: queue a graph and follow its job, list, export and import stored graphs."""

from fastapi import APIRouter, Query, Request, Response

from interpedia_core.errors import InvalidInput
from interpedia_core.wire import BigRowId, RowId
from interpedia_db import graph_store
from interpedia_db.models import Graph
from interpedia_formats.neuronpedia_graph import MalformedGraphError, parse_graph
from interpedia_graph import generation
from interpedia_graph.deps import JobAppDep, SessionDep, SettingsDep, TokenizerDep
from interpedia_graph.schemas.graphs import (
    GraphCreateRequest,
    GraphInfo,
    GraphJobListResponse,
    GraphJobResponse,
    GraphListResponse,
    TranscoderSetInfo,
    TranscoderSetsResponse,
)
from interpedia_graph.transcoder_sets import transcoder_sets_of
from interpedia_jobs.status import cancel_job

router = APIRouter(tags=["graphs"])
MAX_IMPORT_BYTES = 200 * 1024 * 1024


def graph_info(graph: Graph) -> GraphInfo:
    return GraphInfo(
        id=graph.id,
        model_id=graph.model_id,
        slug=graph.slug,
        prompt=graph.prompt,
        prompt_tokens=graph.prompt_tokens,
        source_set_name=graph.source_set_name,
        n_nodes=graph.n_nodes,
        n_links=graph.n_links,
        user_id=graph.user_id,
        created_at=graph.created_at,
    )


async def job_response(session: SessionDep, job_id: int) -> GraphJobResponse:
    view = await generation.job_view(session, job_id)
    return GraphJobResponse(
        job_id=job_id,
        status=view.status,
        model_id=view.request.model_id,
        slug=view.request.slug,
        done=view.done,
        total=view.total,
        message=view.message,
        graph=graph_info(view.graph) if view.graph is not None else None,
    )


@router.get("/transcoder-sets")
async def list_transcoder_sets(
    session: SessionDep, settings: SettingsDep
) -> TranscoderSetsResponse:
    """The transcoder sets registered for this service's model."""
    sets = await transcoder_sets_of(session, settings.model_id)
    return TranscoderSetsResponse(
        model_id=settings.model_id,
        default=settings.transcoder_set or (sets[0].name if sets else None),
        transcoder_sets=[
            TranscoderSetInfo(
                name=s.name,
                model_id=s.model_id,
                n_layers=s.n_layers,
                d_transcoder=s.d_transcoder,
                description=s.description,
            )
            for s in sets
        ],
    )


@router.post("/graphs")
async def create_graph(
    body: GraphCreateRequest,
    session: SessionDep,
    settings: SettingsDep,
    tokenizer: TokenizerDep,
    job_app: JobAppDep,
) -> GraphJobResponse:
    """Queue a graph; follow it with GET /v1/jobs/{job_id} (progress, then the graph)."""
    request = await generation.prepare(
        session,
        settings,
        tokenizer,
        model_id=body.model_id,
        transcoder_set=body.transcoder_set,
        prompt=body.prompt,
        messages=[m.model_dump() for m in body.messages] if body.messages else None,
        slug=body.slug,
        options=body.attribution_options(),
        user_id=body.user_id,
    )
    job_id = await generation.enqueue(job_app, session, settings, request)
    return await job_response(session, job_id)


@router.get("/jobs")
async def list_graph_jobs(
    session: SessionDep,
    model_id: str = Query(max_length=256),
    ended_within: float = Query(
        default=3600, ge=0, le=7 * 86400, description="Seconds an ended job stays listed."
    ),
    limit: int = Query(default=20, ge=1, le=100),
) -> GraphJobListResponse:
    """The model's graph jobs waiting or running, or ended within `ended_within` seconds.

    Newest first; a failed job says why, a succeeded one carries its stored graph.
    """
    job_ids = await generation.model_jobs(session, model_id, ended_within, limit)
    return GraphJobListResponse(jobs=[await job_response(session, j) for j in job_ids])


@router.get("/jobs/{job_id}")
async def get_graph_job(job_id: BigRowId, session: SessionDep) -> GraphJobResponse:
    """A graph job's status and progress; the stored graph once it succeeded."""
    return await job_response(session, job_id)


@router.delete("/jobs/{job_id}")
async def cancel_graph_job(
    job_id: BigRowId, session: SessionDep, job_app: JobAppDep
) -> GraphJobResponse:
    """Cancel a waiting graph job, or stop a running one between two backward batches."""
    await generation.job_view(session, job_id)  # 404 for anything but a graph job
    await cancel_job(job_app, job_id)
    return await job_response(session, job_id)


@router.get("/graphs")
async def list_graphs(
    session: SessionDep,
    model_id: str | None = None,
    user_id: RowId | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> GraphListResponse:
    """Stored graphs, newest first."""
    graphs = await graph_store.list_graphs(session, model_id=model_id, user_id=user_id, limit=limit)
    return GraphListResponse(graphs=[graph_info(g) for g in graphs])


@router.get(
    "/graphs/{model_id}/{slug}",
    response_class=Response,
    responses={200: {"description": "The graph JSON (Neuronpedia's format), gzip-encoded."}},
)
async def export_graph(model_id: str, slug: str, session: SessionDep) -> Response:
    """A stored graph's JSON in Neuronpedia's format: what Neuronpedia imports."""
    data = await graph_store.graph_data(session, model_id, slug)
    return Response(
        data,
        media_type="application/json",
        headers={
            "Content-Encoding": "gzip",
            "Content-Disposition": f'attachment; filename="{slug}.json"',
        },
    )


@router.post(
    "/graphs/import",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def import_graph(
    request: Request, session: SessionDep, user_id: RowId | None = None
) -> GraphInfo:
    """Store a graph JSON in Neuronpedia's format (plain or gzipped) made elsewhere."""
    data = await request.body()
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidInput(f"a graph file may have at most {MAX_IMPORT_BYTES} bytes")
    try:
        graph = parse_graph(data)
    except MalformedGraphError as exc:
        raise InvalidInput(str(exc)) from None
    stored = await graph_store.store_graph_file(session, graph, user_id=user_id)
    await session.commit()
    return graph_info(stored)
