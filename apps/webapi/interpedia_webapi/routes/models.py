"""The models and their sources, as Neuronpedia's `/api/model/list` lists them."""

from fastapi import APIRouter

from interpedia_db.models import User
from interpedia_webapi import catalog
from interpedia_webapi.deps import KEY_ERRORS, OptionalUser, SessionDep
from interpedia_webapi.schemas import ModelInfo, SourceInfo

router = APIRouter(tags=["models"])


async def _models(session: SessionDep, viewer: User | None) -> list[ModelInfo]:
    return [
        ModelInfo(
            id=s.model.id,
            displayName=s.model.display_name,
            layers=s.model.layers,
            dimension=s.model.d_model,
            instruct=s.model.instruct,
            sourceSets=[ss.name for ss in s.source_sets],
            sources=[
                SourceInfo(
                    id=x.id,
                    setName=x.set_name,
                    hookName=x.hook_name,
                    layer=x.layer,
                    architecture=x.architecture,
                    d_sae=x.d_sae,
                    features=x.features,
                    explanations=x.explanations,
                    inferenceEnabled=x.inference_enabled,
                )
                for x in s.sources
            ],
        )
        for s in await catalog.list_models(session, viewer)
    ]


@router.get("/model/list", responses=KEY_ERRORS)
async def model_list(session: SessionDep, viewer: OptionalUser) -> list[ModelInfo]:
    """Every model with its source sets and sources (Neuronpedia's `/api/model/list`): the
    public ones and the caller's own."""
    return await _models(session, viewer)


@router.get("/models", responses=KEY_ERRORS)
async def models_list(session: SessionDep, viewer: OptionalUser) -> list[ModelInfo]:
    """The same as `/api/model/list`, under a plural name."""
    return await _models(session, viewer)
