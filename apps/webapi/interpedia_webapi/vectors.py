"""Custom steering vectors: a user's own direction at one hook of a model, stored as a feature.

As on Neuronpedia, a vector is a feature row (`vector`, `vector_label`, `hook_name`,
`default_steer_strength`, `creator_id`) in a source of its own, `<layer>-neuronpedia-<hook>`
(set `neuronpedia-<hook>`), so everything addressed by (model, source, index) works on it:
lists, activation uploads, and steering, which sends its values to the inference service
as a raw vector instead of asking for an SAE's decoder row.
"""

from dataclasses import dataclass

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import Conflict, InvalidInput, NotFound
from interpedia_db.models import Feature, Model, Source, SourceSet, User
from interpedia_webapi.visibility import Visibility, require_owner, require_read

VECTOR_ARCHITECTURE = "steering_vector"
# Neuronpedia's hook types for vectors and the suffix of the source set each lives in.
HOOK_TYPES = {"hook_resid_pre": "resid-pre", "hook_resid_post": "resid-post"}
STRENGTH_LIMIT = 100.0  # Neuronpedia's STEER_STRENGTH_MIN/MAX


@dataclass(frozen=True)
class NewVector:
    model_id: str
    layer: int
    hook_type: str
    values: list[float]
    default_strength: float
    label: str
    shown: Visibility = "unlisted"


def source_id_for(layer: int, hook_type: str) -> str:
    return f"{layer}-{set_name_for(hook_type)}"


def set_name_for(hook_type: str) -> str:
    return f"neuronpedia-{HOOK_TYPES[hook_type]}"


async def _vector_source(session: AsyncSession, model: Model, layer: int, hook_type: str) -> Source:
    """The source that holds the model's vectors at this hook, made on first use."""
    set_name = set_name_for(hook_type)
    await session.execute(
        pg_insert(SourceSet)
        .values(
            model_id=model.id,
            name=set_name,
            description="Custom steering vectors",
            type=VECTOR_ARCHITECTURE,
            allow_inference_search=False,
        )
        .on_conflict_do_nothing()
    )
    source_id = source_id_for(layer, hook_type)
    await session.execute(
        pg_insert(Source)
        .values(
            model_id=model.id,
            id=source_id,
            set_name=set_name,
            hook_name=f"blocks.{layer}.{hook_type}",
            layer=layer,
            architecture=VECTOR_ARCHITECTURE,
            d_sae=0,
            inference_enabled=False,
        )
        .on_conflict_do_nothing()
    )
    # Lock the source row: two vectors made at once must not take the same index.
    locked = select(Source).where(Source.model_id == model.id, Source.id == source_id)
    return (await session.execute(locked.with_for_update())).scalar_one()


async def create_vector(session: AsyncSession, owner: User, new: NewVector) -> Feature:
    """Store `new` for `owner`; 404 for an unknown model, 400 for a layer, hook, dimension or
    strength the model cannot take, 409 when the owner already has a vector of that label."""
    model = await session.get(Model, new.model_id)
    if model is None:
        raise NotFound(f"no model {new.model_id}")
    if new.hook_type not in HOOK_TYPES:
        raise InvalidInput(f"hookType is one of {', '.join(HOOK_TYPES)}, not {new.hook_type!r}")
    if not 0 <= new.layer < model.layers:
        raise InvalidInput(f"{model.id} has layers 0 to {model.layers - 1}, not {new.layer}")
    if not model.d_model:
        raise InvalidInput(
            f"{model.id}'s dimension is not known (give `dimension` to model/new), so a "
            "vector on it cannot be checked"
        )
    if len(new.values) != model.d_model:
        raise InvalidInput(
            f"the vector has {len(new.values)} values; {model.id}'s "
            f"blocks.{new.layer}.{new.hook_type} has dimension {model.d_model}"
        )
    if abs(new.default_strength) > STRENGTH_LIMIT:
        raise InvalidInput(
            f"vectorDefaultSteerStrength is between -{STRENGTH_LIMIT:g} and {STRENGTH_LIMIT:g}"
        )
    label = new.label.strip()
    if not label:
        raise InvalidInput("vectorLabel must say something")
    duplicate = await session.scalar(
        select(Feature.index).where(
            Feature.creator_id == owner.id,
            Feature.model_id == model.id,
            Feature.vector_label == label,
        )
    )
    if duplicate is not None:
        raise Conflict(f"you already have a vector labelled {label!r} on {model.id}")
    source = await _vector_source(session, model, new.layer, new.hook_type)
    index = await session.scalar(
        select(func.coalesce(func.max(Feature.index) + 1, 0)).where(
            Feature.model_id == model.id, Feature.source_id == source.id
        )
    )
    vector = Feature(
        model_id=model.id,
        source_id=source.id,
        index=index,
        max_act=0.0,
        vector=list(new.values),
        vector_label=label,
        hook_name=source.hook_name,
        default_steer_strength=new.default_strength,
        creator_id=owner.id,
        visibility=new.shown,
    )
    session.add(vector)
    source.d_sae = max(source.d_sae, index + 1)
    try:
        await session.flush()
    except IntegrityError:  # the same label made at the same moment (uq_features_vector_label)
        raise Conflict(f"you already have a vector labelled {label!r} on {model.id}") from None
    return vector


async def _stored_vector(
    session: AsyncSession, model_id: str, source_id: str, index: int
) -> Feature:
    feature = await session.get(Feature, (model_id, source_id, index))
    if feature is None or feature.vector is None:
        raise NotFound(f"no vector {model_id}/{source_id}/{index}")
    return feature


async def get_vector(
    session: AsyncSession, model_id: str, source_id: str, index: int, viewer: User | None
) -> Feature:
    """The vector; another's private one is 404 like a missing one."""
    vector = await _stored_vector(session, model_id, source_id, index)
    require_read(
        vector.creator_id, vector.visibility, viewer, f"vector {model_id}/{source_id}/{index}"
    )
    return vector


async def delete_vector(
    session: AsyncSession, user: User, model_id: str, source_id: str, index: int
) -> None:
    """Only the vector's creator (or an admin) may delete it."""
    vector = await _stored_vector(session, model_id, source_id, index)
    require_owner(vector.creator_id, user, "vector")
    await session.delete(vector)


async def vectors_of(session: AsyncSession, user: User) -> list[Feature]:
    return list(
        (
            await session.execute(
                select(Feature)
                .where(Feature.creator_id == user.id, Feature.vector_label.is_not(None))
                .order_by(Feature.created_at, Feature.model_id, Feature.source_id, Feature.index)
            )
        ).scalars()
    )


async def steering_vectors(
    session: AsyncSession, keys: list[tuple[str, str, int]]
) -> dict[tuple[str, str, int], Feature]:
    """Which of `keys` (model, source, index) are custom vectors: those steer by their values."""
    if not keys:
        return {}
    rows = (
        await session.execute(
            select(Feature)
            .join(Source, (Source.model_id == Feature.model_id) & (Source.id == Feature.source_id))
            .where(
                Source.architecture == VECTOR_ARCHITECTURE,
                Feature.vector.is_not(None),
                tuple_(Feature.model_id, Feature.source_id, Feature.index).in_(keys),
            )
        )
    ).scalars()
    return {(f.model_id, f.source_id, f.index): f for f in rows}


async def decoder_direction(
    session: AsyncSession, model_id: str, source_id: str, index: int
) -> list[float] | None:
    """A custom vector's values (None for an SAE feature: the inference service has its row)."""
    found = await steering_vectors(session, [(model_id, source_id, index)])
    vector = found.get((model_id, source_id, index))
    return None if vector is None else list(vector.vector or [])
