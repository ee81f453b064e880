"""Bring your own model and SAEs (Neuronpedia's `model/new`, `source-set/*`, `feature/` and
`activation/upload-batch`): writes need a key, uploads only into what the caller made."""

from fastapi import APIRouter, Request

from interpedia_core.errors import Conflict, Forbidden, InvalidInput, NotFound
from interpedia_core.service import error_responses
from interpedia_db.models import Source, SourceSet
from interpedia_webapi import uploads
from interpedia_webapi.deps import (
    ADMIN_ERRORS,
    KEY_ERRORS,
    AdminUser,
    CurrentUser,
    OptionalUser,
    SessionDep,
)
from interpedia_webapi.schemas import (
    ActivationUploadBatchRequest,
    FeatureUploadBatchRequest,
    ModelNewRequest,
    ModelNewResponse,
    SourceNewRequest,
    SourceNewResponse,
    SourceReleaseNewRequest,
    SourceReleaseResponse,
    SourceSetNewRequest,
    SourceSetResponse,
    SourceSetSource,
    UploadBatchResponse,
    parse_index,
    visibility_of,
)
from interpedia_webapi.upload_stream import read_activation_upload

router = APIRouter(tags=["uploads"])
# Read as the body arrives, so `RefuseNul` leaves their bodies to the route (app.py).
STREAMED_PATHS = ("/api/activation/upload-batch",)
UPLOAD_ERRORS = KEY_ERRORS | error_responses(InvalidInput, NotFound, Forbidden)


def _source_set(source_set: SourceSet, sources: list[Source]) -> SourceSetResponse:
    return SourceSetResponse(
        name=source_set.name,
        modelId=source_set.model_id,
        description=source_set.description,
        type=source_set.type,
        urls=source_set.urls,
        creatorId=None if source_set.creator_id is None else str(source_set.creator_id),
        visibility=source_set.visibility.upper(),
        sources=[
            SourceSetSource(
                id=s.id,
                modelId=s.model_id,
                setName=s.set_name,
                hookName=s.hook_name,
                hasDashboards=s.has_dashboards,
                inferenceEnabled=s.inference_enabled,
            )
            for s in sources
        ],
    )


@router.post("/model/new", responses=KEY_ERRORS | error_responses(InvalidInput, Conflict))
async def model_new(
    body: ModelNewRequest, session: SessionDep, user: CurrentUser
) -> ModelNewResponse:
    """Register a model of the caller's (no inference: its dashboards are uploaded)."""
    model = await uploads.create_model(
        session,
        user,
        uploads.NewModel(body.id, body.layers, body.displayName, body.url, body.dimension),
    )
    await session.commit()
    return ModelNewResponse(
        id=model.id,
        displayName=model.display_name,
        layers=model.layers,
        dimension=model.d_model or None,
        website=model.website,
        creatorId=str(user.id),
    )


@router.post("/source-release/new", responses=ADMIN_ERRORS | error_responses(Conflict))
async def source_release_new(
    body: SourceReleaseNewRequest, session: SessionDep, user: AdminUser
) -> SourceReleaseResponse:
    """A release grouping source sets (admins only, as on Neuronpedia)."""
    release = await uploads.create_release(
        session, user, body.name, body.description, body.urls, body.creatorName
    )
    await session.commit()
    return SourceReleaseResponse(
        name=release.name,
        description=release.description,
        urls=release.urls,
        creatorName=release.creator_name,
        creatorId=str(user.id),
    )


@router.post(
    "/source/new", responses=ADMIN_ERRORS | error_responses(InvalidInput, NotFound, Conflict)
)
async def source_new(
    body: SourceNewRequest, session: SessionDep, user: AdminUser
) -> SourceNewResponse:
    """One source in an existing set (admins only, as on Neuronpedia); `source-set/new`
    already makes one per layer."""
    source = await uploads.create_source(
        session, body.modelId, body.id, body.setName, body.hookName, body.saelensConfig or {}
    )
    await session.commit()
    return SourceNewResponse(
        modelId=source.model_id,
        id=source.id,
        setName=source.set_name,
        hookName=source.hook_name,
        layer=source.layer,
        architecture=source.architecture,
        d_sae=source.d_sae,
    )


@router.post(
    "/source-set/new", responses=KEY_ERRORS | error_responses(InvalidInput, NotFound, Conflict)
)
async def source_set_new(
    body: SourceSetNewRequest, session: SessionDep, user: CurrentUser
) -> SourceSetResponse:
    """A source set of the caller's with one empty source per layer, `<layer>-<name>`."""
    source_set, sources = await uploads.create_source_set(
        session,
        user,
        body.modelId,
        body.name,
        body.description,
        body.url,
        visibility_of(body.visibility),
    )
    await session.commit()
    return _source_set(source_set, sources)


@router.get("/source-set/{model_id}/{name}", responses=KEY_ERRORS | error_responses(NotFound))
async def source_set_get(
    model_id: str, name: str, session: SessionDep, viewer: OptionalUser
) -> SourceSetResponse:
    """A source set and its sources (404 for another's private set)."""
    return _source_set(*await uploads.get_source_set(session, model_id, name, viewer))


@router.post("/feature/upload-batch", responses=UPLOAD_ERRORS | error_responses(Conflict))
async def feature_upload_batch(
    body: FeatureUploadBatchRequest, session: SessionDep, user: CurrentUser
) -> UploadBatchResponse:
    """New features (dashboards computed elsewhere) into a source of the caller's set."""
    features = [
        uploads.UploadedFeature(
            index=parse_index(f.index),
            density=f.density,
            activations=[
                uploads.UploadedActivation(
                    a.tokens, a.values, a.quantileMin, a.quantileMax, a.quantileFraction
                )
                for a in f.activations
            ],
            explanations=[
                uploads.UploadedExplanation(e.text, e.methodName, e.modelName)
                for e in f.explanations
            ],
            top_logits=[(x.token, x.value) for x in f.topLogits or []],
            bottom_logits=[(x.token, x.value) for x in f.bottomLogits or []],
        )
        for f in body.features
    ]
    count = await uploads.upload_features(session, user, body.modelId, body.source, features)
    await session.commit()
    return UploadBatchResponse(message="Success", count=count)


_ACTIVATION_UPLOAD_SCHEMA = ActivationUploadBatchRequest.model_json_schema(
    ref_template="#/components/schemas/{model}"
)
_ACTIVATION_UPLOAD_SCHEMA.pop("$defs", None)


@router.post(
    "/activation/upload-batch",
    responses=UPLOAD_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ACTIVATION_UPLOAD_SCHEMA}},
        }
    },
)
async def activation_upload_batch(
    request: Request, session: SessionDep, user: CurrentUser
) -> UploadBatchResponse:
    """Activations of one feature, read and stored as the body streams in (see
    `upload_stream`): `modelId`, `source` and `index` come before `activations`."""
    upload = await read_activation_upload(request.stream(), uploads.MAX_UPLOAD_BYTES)
    count = await uploads.upload_activations(
        session,
        user,
        upload.model_id,
        upload.source_id,
        parse_index(upload.index),
        upload.activations,
    )
    await session.commit()
    return UploadBatchResponse(message="Success", count=count)
