"""Custom steering vectors (Neuronpedia's `/api/vector/*`): anyone may read one by its key,
only its creator (or an admin) deletes it."""

from fastapi import APIRouter

from interpedia_core.errors import Conflict, Forbidden, InvalidInput, NotFound
from interpedia_core.service import error_responses
from interpedia_db.models import Feature
from interpedia_webapi import vectors
from interpedia_webapi.deps import KEY_ERRORS, CurrentUser, OptionalUser, SessionDep
from interpedia_webapi.schemas import (
    VectorCreated,
    VectorGetResponse,
    VectorInfo,
    VectorKey,
    VectorListOwnedResponse,
    VectorNewRequest,
    VectorNewResponse,
    parse_index,
    visibility_of,
)

router = APIRouter(prefix="/vector", tags=["vectors"])


def _info(vector: Feature) -> VectorInfo:
    return VectorInfo(
        modelId=vector.model_id,
        layer=vector.source_id,
        index=str(vector.index),
        vectorLabel=vector.vector_label or "",
        vectorDefaultSteerStrength=vector.default_steer_strength,
        hookName=vector.hook_name or "",
        vector=vector.vector or [],
        createdAt=vector.created_at.isoformat(),
        visibility=vector.visibility.upper(),
    )


@router.post("/new", responses=KEY_ERRORS | error_responses(NotFound, InvalidInput, Conflict))
async def vector_new(
    body: VectorNewRequest, session: SessionDep, user: CurrentUser
) -> VectorNewResponse:
    """Store a steering vector for the caller at `blocks.<layerNumber>.<hookType>`."""
    vector = await vectors.create_vector(
        session,
        user,
        vectors.NewVector(
            model_id=body.modelId,
            layer=body.layerNumber,
            hook_type=body.hookType,
            values=body.vector,
            default_strength=body.vectorDefaultSteerStrength,
            label=body.vectorLabel,
            shown=visibility_of(body.visibility),
        ),
    )
    await session.commit()
    info = _info(vector)
    return VectorNewResponse(
        message="Success",
        url=f"/{info.modelId}/{info.layer}/{info.index}",
        vector=VectorCreated(
            modelId=info.modelId,
            source=info.layer,
            index=info.index,
            label=info.vectorLabel,
            createdAt=info.createdAt,
            defaultSteerStrength=info.vectorDefaultSteerStrength,
            hookName=info.hookName,
            values=info.vector,
        ),
    )


@router.post("/get", responses=KEY_ERRORS | error_responses(NotFound, InvalidInput))
async def vector_get(
    body: VectorKey, session: SessionDep, viewer: OptionalUser
) -> VectorGetResponse:
    """A vector by (model, source, index); another's private vector is 404."""
    vector = await vectors.get_vector(
        session, body.modelId, body.source, parse_index(body.index), viewer
    )
    return VectorGetResponse(vector=_info(vector))


@router.post("/delete", responses=KEY_ERRORS | error_responses(NotFound, Forbidden, InvalidInput))
async def vector_delete(body: VectorKey, session: SessionDep, user: CurrentUser) -> dict[str, str]:
    """Delete one of the caller's vectors."""
    await vectors.delete_vector(session, user, body.modelId, body.source, parse_index(body.index))
    await session.commit()
    return {"message": "Success"}


@router.post("/list-owned", responses=KEY_ERRORS)
async def vector_list_owned(session: SessionDep, user: CurrentUser) -> VectorListOwnedResponse:
    """The caller's vectors, oldest first."""
    return VectorListOwnedResponse(
        vectors=[_info(v) for v in await vectors.vectors_of(session, user)]
    )
