"""Saved steering runs and presets (Neuronpedia's `/api/steer-load`, `/api/steer/presets`).

Every steer is kept under its `id` (`steering`), so sharing a run is sharing that id: the
link `/steer/{id}` and `steer-load` read it back without running the model again.
"""

from fastapi import APIRouter

from interpedia_core.errors import NotFound
from interpedia_core.service import error_responses
from interpedia_db.models import Feature, Model, SteerCache
from interpedia_webapi import steering, vectors
from interpedia_webapi.deps import KEY_ERRORS, OptionalUser, SessionDep
from interpedia_webapi.schemas import (
    SteerChatRequest,
    SteerFeaturePreset,
    SteerLoadRequest,
    SteerLoadResponse,
    SteerPresetFeature,
    SteerPresetsRequest,
    SteerPresetsResponse,
    SteerRequest,
)

router = APIRouter(tags=["steering"])


def load_response(run: SteerCache) -> SteerLoadResponse:
    kind = steering.run_kind(run)
    prompt = run.request.get("prompt")
    if kind == "chat":
        users = [m.get("content") for m in prompt or [] if m.get("role") == "user"]
        input_text = users[-1] if users else None
    else:
        input_text = prompt
    asked: SteerRequest | SteerChatRequest | None = None
    if run.asked is not None:
        schema = SteerChatRequest if kind == "chat" else SteerRequest
        asked = schema.model_validate(run.asked)
    return SteerLoadResponse(
        id=run.key,
        shareUrl=f"/steer/{run.key}",
        kind=kind,  # type: ignore[arg-type]
        modelId=run.request.get("model", ""),
        inputText=input_text,
        request=asked,
        DEFAULT=run.response.get("DEFAULT"),
        STEERED=run.response.get("STEERED"),
        logprobs=run.response.get("logprobs"),
        createdAt=run.created_at.isoformat(),
    )


@router.post("/steer-load", responses=error_responses(NotFound))
async def steer_load(body: SteerLoadRequest, session: SessionDep) -> SteerLoadResponse:
    """A saved steering run by its id; anyone with the id may read it."""
    return load_response(await steering.saved_run(session, body.steerOutputId))


def _vector_preset(vector: Feature) -> SteerFeaturePreset:
    label = vector.vector_label or ""
    feature = SteerPresetFeature(
        modelId=vector.model_id,
        layer=vector.source_id,
        index=vector.index,
        explanation=label,
        strength=vector.default_steer_strength,
        hasVector=True,
    )
    return SteerFeaturePreset(name=label, features=[feature], isUserVector=True)


def _run_preset(run: SteerCache) -> SteerFeaturePreset | None:
    """A saved run as a preset: its features and strengths, and the run as the example."""
    if run.asked is None:
        return None
    features = [
        SteerPresetFeature(
            modelId=f["modelId"],
            layer=f["layer"],
            index=int(f["index"]),
            explanation="",
            strength=f["strength"],
        )
        for f in run.asked.get("features", [])
    ]
    name = load_response(run).inputText or run.key[:12]
    return SteerFeaturePreset(name=name[:80], features=features, exampleSteerOutputId=run.key)


@router.post("/steer/presets", responses=KEY_ERRORS | error_responses(NotFound))
async def steer_presets(
    body: SteerPresetsRequest, session: SessionDep, user: OptionalUser
) -> SteerPresetsResponse:
    """What the steer page offers to start from; without a key, nothing of anyone's."""
    if await session.get(Model, body.modelId) is None:
        raise NotFound(f"no model {body.modelId}")
    presets: list[SteerFeaturePreset] = []
    if user is not None:
        presets += [
            _vector_preset(v)
            for v in await vectors.vectors_of(session, user)
            if v.model_id == body.modelId
        ]
        runs = await steering.runs_of(session, user, body.modelId, limit=20)
        presets += [p for p in map(_run_preset, runs) if p is not None]
    return SteerPresetsResponse(
        modelId=body.modelId,
        defaultPrompt="",
        promptPresets=[],
        featurePresets=presets,
        defaultSelectedFeatures=[],
    )
