"""Neuronpedia's graph API (`/api/graph/*`, `/api/steer-logits`), plus the graph jobs the page
follows and the graph JSON it draws."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from interpedia_clients.graph import AsyncGraphClient
from interpedia_clients.graph import models as graph_models
from interpedia_core.errors import Conflict, Forbidden, InvalidInput, NotFound, UpstreamError
from interpedia_core.service import error_responses
from interpedia_db import graph_store
from interpedia_db.models import Graph, GraphSubgraph
from interpedia_webapi import graphs
from interpedia_webapi.deps import (
    KEY_ERRORS,
    RATE_ERRORS,
    CurrentUser,
    OptionalUser,
    RateLimitDep,
    SessionDep,
    SettingsDep,
    UpstreamsDep,
)
from interpedia_webapi.schemas.graphs import (
    GraphGenerateRequest,
    GraphGenerateResponse,
    GraphJobInfo,
    GraphKey,
    GraphMetadata,
    GraphParseChatPromptRequest,
    GraphParseChatPromptResponse,
    GraphTokenizeRequest,
    GraphTokenizeResponse,
    GraphUser,
    MessageResponse,
    SaveToDbRequest,
    SaveToDbResponse,
    SignedPutRequest,
    SignedPutResponse,
    SteerLogitsRequest,
    SteerLogitsResponse,
    Subgraph,
    SubgraphDeleteRequest,
    SubgraphDeleteResponse,
    SubgraphListResponse,
    SubgraphSaveRequest,
    SubgraphSaveResponse,
    TranscoderLayerMetrics,
    TranscoderTrainingInfo,
)
from interpedia_webapi.upstream import upstream_errors

# Every graph route may meet a bad or missing graph, another user's graph, or the graph
# service's refusal or failure (passed on by `upstream_errors`).
router = APIRouter(
    tags=["graphs"],
    responses=error_responses(InvalidInput, Forbidden, NotFound, Conflict, UpstreamError),
)


def get_graph_client(upstreams: UpstreamsDep) -> AsyncGraphClient:
    return upstreams.graph()


GraphClientDep = Annotated[AsyncGraphClient, Depends(get_graph_client)]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def _metadata(session: SessionDep, graph: Graph, base: str) -> GraphMetadata:
    owner = await graphs.owner_of(session, graph.user_id)
    return GraphMetadata(
        id=graph.id,
        modelId=graph.model_id,
        sourceSetName=graph.source_set_name,
        slug=graph.slug,
        promptTokens=graph.prompt_tokens,
        prompt=graph.prompt,
        titlePrefix=graph.title_prefix,
        isFeatured=graph.is_featured,
        url=graphs.json_url(base, graph.model_id, graph.slug),
        userId=graph.user_id,
        user=GraphUser(id=owner.id, name=owner.name) if owner else None,
        numNodes=graph.n_nodes,
        numLinks=graph.n_links,
        createdAt=graph.created_at,
        updatedAt=graph.updated_at,
    )


def _job_info(job: graph_models.GraphJobResponse, base: str) -> GraphJobInfo:
    return GraphJobInfo(
        jobId=job.job_id,
        status=job.status,
        modelId=job.model_id,
        slug=job.slug,
        done=job.done,
        total=job.total,
        message=job.message,
        url=graphs.page_url(base, job.model_id, job.slug) if job.graph is not None else None,
    )


def _create_request(
    body: GraphGenerateRequest, user_id: int | None
) -> graph_models.GraphCreateRequest:
    return graph_models.GraphCreateRequest(
        model_id=body.modelId,
        transcoder_set=body.sourceSetName,
        prompt=body.prompt,
        messages=[graph_models.GraphChatMessage(**m.model_dump()) for m in body.messages]
        if body.messages
        else None,
        slug=body.slug or None,
        max_n_logits=body.maxNLogits,
        desired_logit_prob=body.desiredLogitProb,
        node_threshold=body.nodeThreshold,
        edge_threshold=body.edgeThreshold,
        max_feature_nodes=body.maxFeatureNodes,
        user_id=user_id,
    )


@router.post("/graph/generate", dependencies=[RateLimitDep], responses=RATE_ERRORS)
async def graph_generate(
    body: GraphGenerateRequest,
    request: Request,
    settings: SettingsDep,
    user: OptionalUser,
    client: GraphClientDep,
) -> GraphGenerateResponse:
    """Make a graph of the prompt and store it; answers once it is made (Neuronpedia's)."""
    async with upstream_errors(client):
        job = await client.create_graph(_create_request(body, user.id if user else None))
    done = await graphs.wait_for_job(client, job.job_id, settings.graph_wait_seconds)
    base = _base(request)
    return GraphGenerateResponse(
        message="Graph saved to database",
        s3url=graphs.json_url(base, done.model_id, done.slug),
        url=graphs.page_url(base, done.model_id, done.slug),
        numNodes=done.graph.n_nodes,
        numLinks=done.graph.n_links,
    )


@router.post("/graph/jobs", dependencies=[RateLimitDep], responses=RATE_ERRORS)
async def graph_job_start(
    body: GraphGenerateRequest, request: Request, user: OptionalUser, client: GraphClientDep
) -> GraphJobInfo:
    """Queue a graph and answer at once (ours): follow it with GET /api/graph/jobs/{id}."""
    async with upstream_errors(client):
        job = await client.create_graph(_create_request(body, user.id if user else None))
    return _job_info(job, _base(request))


@router.get("/graph/jobs")
async def graph_jobs(
    request: Request, client: GraphClientDep, modelId: str = Query(max_length=128)
) -> list[GraphJobInfo]:
    """The model's graph jobs under way or ended within the hour, newest first (ours).

    What the graph page shows of graphs being made (the demo's example graph among them):
    queued, running with its progress, failed with why, or the page of its stored graph.
    """
    async with upstream_errors(client):
        listed = await client.list_graph_jobs(model_id=modelId)
    return [_job_info(job, _base(request)) for job in listed.jobs]


@router.get("/graph/jobs/{job_id}")
async def graph_job(job_id: int, request: Request, client: GraphClientDep) -> GraphJobInfo:
    """Where a graph job is: waiting, its progress, or the page of its graph."""
    async with upstream_errors(client):
        job = await client.get_graph_job(job_id)
    return _job_info(job, _base(request))


@router.delete("/graph/jobs/{job_id}")
async def graph_job_cancel(job_id: int, request: Request, client: GraphClientDep) -> GraphJobInfo:
    """Cancel a graph job (its graph is not stored)."""
    async with upstream_errors(client):
        job = await client.cancel_graph_job(job_id)
    return _job_info(job, _base(request))


@router.get("/graph/list")
async def graph_list(
    request: Request,
    session: SessionDep,
    modelId: str | None = Query(default=None, max_length=128),
    limit: int = Query(default=50, ge=1, le=500),
) -> list[GraphMetadata]:
    """Graphs, newest first (ours: the page's list)."""
    found = await graph_store.list_graphs(session, model_id=modelId, limit=limit)
    return [await _metadata(session, g, _base(request)) for g in found]


@router.post("/graph/list-owned", responses=KEY_ERRORS)
async def graph_list_owned(
    request: Request, session: SessionDep, user: CurrentUser
) -> list[GraphMetadata]:
    """The caller's graphs, newest first."""
    found = await graph_store.list_graphs(session, user_id=user.id, limit=1000)
    return [await _metadata(session, g, _base(request)) for g in found]


@router.post("/graph/delete", responses=KEY_ERRORS)
async def graph_delete(body: GraphKey, session: SessionDep, user: CurrentUser) -> MessageResponse:
    """Delete one of the caller's graphs (with its subgraphs)."""
    await graph_store.delete_graph(session, body.modelId, body.slug, user.id)
    await session.commit()
    return MessageResponse(message="Graph deleted successfully")


@router.post("/graph/signed-put", responses=KEY_ERRORS)
async def graph_signed_put(
    body: SignedPutRequest,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> SignedPutResponse:
    """Upload 1/2: a URL signed by this server to PUT the graph file to, for an hour."""
    upload, url = await graphs.issue_upload(
        session,
        user,
        filename=body.filename,
        content_length=body.contentLength,
        max_bytes=settings.max_graph_upload_bytes,
        key=request.app.state.signing_key,
        base_url=_base(request),
    )
    await session.commit()
    return SignedPutResponse(url=url, key=f"{user.id}/{upload.filename}", putRequestId=upload.id)


@router.put(
    "/graph/upload/{upload_id}",
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}
    },
)
async def graph_upload(
    upload_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    expires: int = Query(),
    signature: str = Query(pattern=r"^[0-9a-f]{64}$", description="The URL's HMAC-SHA256, in hex."),
) -> MessageResponse:
    """Where a signed URL points: keeps the file (gzipped or not) for save-to-db."""
    data = bytearray()
    async for chunk in request.stream():  # undecoded: a gzipped file is kept gzipped
        data.extend(chunk)
        if len(data) > settings.max_graph_upload_bytes:
            raise InvalidInput(
                f"a graph file may have at most {settings.max_graph_upload_bytes} bytes"
            )
    await graphs.receive_upload(
        session, upload_id, expires, signature, bytes(data), request.app.state.signing_key
    )
    await session.commit()
    return MessageResponse(message="uploaded")


@router.post("/graph/save-to-db", responses=KEY_ERRORS)
async def graph_save_to_db(
    body: SaveToDbRequest, request: Request, session: SessionDep, user: CurrentUser
) -> SaveToDbResponse:
    """Upload 2/2: check the uploaded file is Neuronpedia's graph format, and store it."""
    graph = await graphs.save_upload(session, user, body.putRequestId)
    await session.commit()
    return SaveToDbResponse(
        message="Graph saved to database",
        url=graphs.page_url(_base(request), graph.model_id, graph.slug),
    )


def _subgraph(subgraph: GraphSubgraph, graph: Graph, owner: Any) -> Subgraph:
    return Subgraph(
        id=subgraph.id,
        displayName=subgraph.display_name,
        graphMetadataId=graph.id,
        modelId=graph.model_id,
        slug=graph.slug,
        pinnedIds=subgraph.pinned_ids,
        supernodes=subgraph.supernodes,
        clerps=subgraph.clerps,
        pruningThreshold=subgraph.pruning_threshold,
        densityThreshold=subgraph.density_threshold,
        userId=subgraph.user_id,
        user=GraphUser(id=owner.id, name=owner.name) if owner else None,
        createdAt=subgraph.created_at,
        updatedAt=subgraph.updated_at,
    )


@router.post("/graph/subgraph/save", responses=KEY_ERRORS)
async def graph_subgraph_save(
    body: SubgraphSaveRequest, session: SessionDep, user: CurrentUser
) -> SubgraphSaveResponse:
    """Save pinned nodes, supernodes and thresholds over a graph (or overwrite your own)."""
    graph = await graph_store.get_graph(session, body.modelId, body.slug)
    values = {
        "display_name": body.displayName,
        "pinned_ids": body.pinnedIds,
        "supernodes": body.supernodes,
        "clerps": body.clerps,
        "pruning_threshold": body.pruningThreshold,
        "density_threshold": body.densityThreshold,
    }
    subgraph = await graphs.save_subgraph(session, user, graph, values, body.overwriteId)
    await session.commit()
    return SubgraphSaveResponse(success=True, subgraphId=subgraph.id)


@router.post("/graph/subgraph/list", responses=KEY_ERRORS)
async def graph_subgraph_list(
    body: GraphKey, session: SessionDep, user: CurrentUser
) -> SubgraphListResponse:
    """The caller's subgraphs of a graph, newest first."""
    graph = await graph_store.get_graph(session, body.modelId, body.slug)
    found = await graphs.subgraphs_of(session, user, graph)
    return SubgraphListResponse(success=True, subgraphs=[_subgraph(s, graph, user) for s in found])


@router.post("/graph/subgraph/delete", responses=KEY_ERRORS)
async def graph_subgraph_delete(
    body: SubgraphDeleteRequest, session: SessionDep, user: CurrentUser
) -> SubgraphDeleteResponse:
    """Delete one of the caller's subgraphs."""
    await graphs.delete_subgraph(session, user, body.subgraphId)
    await session.commit()
    return SubgraphDeleteResponse(success=True, message="Subgraph deleted successfully")


@router.get("/graph/subgraph/{subgraph_id}")
async def graph_subgraph_get(subgraph_id: str, session: SessionDep) -> Subgraph:
    """One subgraph by its id (ours): what a shared link opens."""
    subgraph = await graph_store.get_subgraph(session, subgraph_id)
    graph = await session.get(Graph, subgraph.graph_id)
    return _subgraph(subgraph, graph, await graphs.owner_of(session, subgraph.user_id))


@router.post("/graph/tokenize", dependencies=[RateLimitDep], responses=RATE_ERRORS)
async def graph_tokenize(
    body: GraphTokenizeRequest, client: GraphClientDep
) -> GraphTokenizeResponse:
    """The prompt's tokens (positions for steering) and the logits a graph would target."""
    async with upstream_errors(client):
        answer = await client.forward_pass(
            graph_models.ForwardPassRequest(
                prompt=body.prompt,
                messages=[graph_models.GraphChatMessage(**m.model_dump()) for m in body.messages]
                if body.messages
                else None,
                max_n_logits=body.maxNLogits,
                desired_logit_prob=body.desiredLogitProb,
            )
        )
    return GraphTokenizeResponse.model_validate(answer.model_dump())


@router.post("/graph/parse-chat-prompt")
async def graph_parse_chat_prompt(
    body: GraphParseChatPromptRequest, client: GraphClientDep
) -> GraphParseChatPromptResponse:
    """The chat turns behind a rendered graph prompt (None for a plain prompt)."""
    async with upstream_errors(client):
        answer = await client.parse_chat_prompt(
            graph_models.ParseChatPromptRequest(prompt=body.prompt)
        )
    return GraphParseChatPromptResponse.model_validate(answer.model_dump())


@router.post("/steer-logits", dependencies=[RateLimitDep], responses=RATE_ERRORS)
async def steer_logits(body: SteerLogitsRequest, client: GraphClientDep) -> SteerLogitsResponse:
    """Generate with and without feature interventions on a graph's features."""
    async with upstream_errors(client):
        answer = await client.steer(
            graph_models.SteerRequest(
                model_id=body.modelId,
                transcoder_set=body.sourceSetName,
                prompt=body.prompt,
                features=[graph_models.SteerFeature(**f.model_dump()) for f in body.features],
                n_tokens=body.nTokens,
                top_k=body.topK,
                temperature=body.temperature,
                freq_penalty=body.freqPenalty,
                seed=body.seed,
                freeze_attention=body.freezeAttention,
            )
        )
    return SteerLogitsResponse.model_validate(answer.model_dump(by_alias=True))


@router.get("/graph/transcoder-sets")
async def graph_transcoder_sets(
    session: SessionDep, modelId: str = Query(max_length=128)
) -> list[str]:
    """The model's transcoder sets (ours: what graphs can be made with)."""
    return await graphs.transcoder_sets(session, modelId)


def _metrics(values: dict[str, float]) -> dict[str, float | None]:
    """The run tracker's metric names (`dead_fraction`) as the wire's (`deadFraction`)."""
    return {
        "fvu": values.get("fvu"),
        "l0": values.get("l0"),
        "deadFraction": values.get("dead_fraction"),
    }


def _training(training: graphs.TranscoderTraining) -> TranscoderTrainingInfo:
    return TranscoderTrainingInfo(
        name=training.name,
        status=training.status,
        nTokens=training.n_tokens,
        totalTokens=training.total_tokens,
        **_metrics(training.means),
        layers=[
            TranscoderLayerMetrics(layer=index, **_metrics(values))
            for index, values in training.layers
        ],
        layersWithDashboards=training.with_dashboards,
        layerCount=training.sources,
    )


@router.get("/graph/transcoder-trainings")
async def graph_transcoder_trainings(
    session: SessionDep, modelId: str = Query(max_length=128)
) -> list[TranscoderTrainingInfo]:
    """The model's transcoder sets being trained or getting dashboards (ours).

    Each with its run's latest step (tokens, per-layer FVU, L0 and dead fraction) and how
    many layers have dashboards: the graph page follows them (the demo's set among them).
    """
    return [_training(t) for t in await graphs.transcoder_trainings(session, modelId)]


@router.get(
    "/graph/{modelId}/{slug}/json",
    response_class=Response,
    responses={200: {"description": "The graph JSON in Neuronpedia's format (gzip-encoded)."}},
)
async def graph_json(modelId: str, slug: str, session: SessionDep) -> Response:
    """The graph itself: what Neuronpedia's metadata `url` points at."""
    data = await graph_store.graph_data(session, modelId, slug)
    return Response(data, media_type="application/json", headers={"Content-Encoding": "gzip"})


@router.get("/graph/{modelId}/{slug}")
async def graph_get(
    modelId: str,
    slug: str,
    request: Request,
    session: SessionDep,
) -> GraphMetadata:
    """A graph's metadata; its `url` is the graph JSON."""
    graph = await graph_store.get_graph(session, modelId, slug)
    return await _metadata(session, graph, _base(request))
