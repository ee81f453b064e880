"""Bring your own model and SAEs: models, source sets and dashboards computed elsewhere.

A lab registers a model (`model/new`), a source set with one source per layer
(`source-set/new`, sources `<layer>-<set>` as on Neuronpedia), then uploads features and
their activations (SAEDashboard output, Neuronpedia exports) into those sources. Only the
set's creator (or an admin) uploads into it; activations of a custom steering vector belong
to the vector's creator. Each upload is one transaction: a bad row anywhere leaves nothing.

Activation uploads stream: `upload_activations` takes an async iterator of rows and feeds
them to one COPY as they arrive, so a 100k-row upload holds one chunk in memory, not the
payload parsed twice.
"""

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import Conflict, Forbidden, InvalidInput, NotFound
from interpedia_core.wire import INT32_MAX
from interpedia_db.bulk import ActivationRow, copy_activations
from interpedia_db.models import (
    Explanation,
    Feature,
    Model,
    Source,
    SourceRelease,
    SourceSet,
    User,
)
from interpedia_webapi.visibility import Visibility, require_read

MODEL_ID = re.compile(r"^[a-z][a-z0-9.-]*[a-z0-9]$|^[a-z]$")
SET_NAME = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$|^[a-z0-9]$")
CUSTOM_ARCHITECTURE = "custom"  # dashboards uploaded without weights: nothing to run
MAX_UPLOAD_ACTIVATIONS = 200_000  # rows in one activation upload
MAX_UPLOAD_BYTES = 256 * 1024 * 1024  # bytes of one activation upload's body
MAX_TOKENS = 4096  # tokens in one activation row


@dataclass(frozen=True)
class NewModel:
    id: str
    layers: int
    display_name: str | None = None
    url: str | None = None
    dimension: int | None = None


async def create_model(session: AsyncSession, owner: User, new: NewModel) -> Model:
    if not MODEL_ID.match(new.id) or "--" in new.id or ".." in new.id:
        raise InvalidInput(
            "a model id has lowercase letters, digits, hyphens and periods, starts with a "
            "letter and does not end with a hyphen or period (no doubled ones)"
        )
    if await session.get(Model, new.id) is not None:
        raise Conflict(f"a model {new.id!r} exists")
    model = Model(
        id=new.id,
        display_name=new.display_name or new.id,
        layers=new.layers,
        d_model=new.dimension or 0,  # 0: not known (as imports store a missing dimension)
        website=new.url,
        creator_id=owner.id,
    )
    session.add(model)
    await session.flush()
    return model


async def create_source_set(
    session: AsyncSession,
    owner: User,
    model_id: str,
    name: str,
    description: str | None,
    url: str | None,
    shown: Visibility = "unlisted",
) -> tuple[SourceSet, list[Source]]:
    """A custom source set with one empty source per layer of the model."""
    if not SET_NAME.match(name) or "--" in name or name == "neurons":
        raise InvalidInput(
            "a source set name has lowercase letters, digits and hyphens, starts with a "
            "letter or digit, does not end with a hyphen, has no '--' and is not 'neurons'"
        )
    model = await session.get(Model, model_id)
    if model is None:
        raise NotFound(f"no model {model_id}")
    if await session.get(SourceSet, (model_id, name)) is not None:
        raise Conflict(f"{model_id} already has a source set {name!r}")
    source_set = SourceSet(
        model_id=model_id,
        name=name,
        description=description or name,
        type="custom",
        allow_inference_search=False,
        urls=[url] if url else [],
        creator_id=owner.id,
        visibility=shown,
    )
    session.add(source_set)
    await session.flush()
    sources = [
        Source(
            model_id=model_id,
            id=f"{layer}-{name}",
            set_name=name,
            hook_name="",
            layer=layer,
            architecture=CUSTOM_ARCHITECTURE,
            d_sae=0,
            inference_enabled=False,
        )
        for layer in range(model.layers)
    ]
    session.add_all(sources)
    await session.flush()
    return source_set, sources


async def create_release(
    session: AsyncSession,
    owner: User,
    name: str,
    description: str,
    urls: list[str],
    creator_name: str,
) -> SourceRelease:
    """A release (a published group of source sets); admins make them, as on Neuronpedia."""
    if await session.get(SourceRelease, name) is not None:
        raise Conflict(f"a release {name!r} exists")
    release = SourceRelease(
        name=name,
        description=description,
        urls=urls,
        creator_name=creator_name or owner.name,
        creator_id=owner.id,
    )
    session.add(release)
    await session.flush()
    return release


async def create_source(
    session: AsyncSession,
    model_id: str,
    source_id: str,
    set_name: str,
    hook_name: str,
    saelens_config: dict[str, object],
) -> Source:
    """One source in an existing set, named `<layer>-<set>` like every source."""
    layer, _, suffix = source_id.partition("-")
    if not layer.isdigit() or suffix != set_name:
        raise InvalidInput(f"a source of set {set_name!r} is named <layer>-{set_name}")
    if await session.get(SourceSet, (model_id, set_name)) is None:
        raise NotFound(f"no source set {model_id}/{set_name}")
    if await session.get(Source, (model_id, source_id)) is not None:
        raise Conflict(f"a source {model_id}/{source_id} exists")
    d_sae = saelens_config.get("d_sae")
    architecture = saelens_config.get("architecture")
    source = Source(
        model_id=model_id,
        id=source_id,
        set_name=set_name,
        hook_name=hook_name or str(saelens_config.get("hook_name") or ""),
        layer=int(layer),
        architecture=architecture if isinstance(architecture, str) else CUSTOM_ARCHITECTURE,
        d_sae=d_sae if isinstance(d_sae, int) and 0 <= d_sae <= INT32_MAX else 0,
        saelens_config=saelens_config,
        inference_enabled=False,
    )
    session.add(source)
    await session.flush()
    return source


async def get_source_set(
    session: AsyncSession, model_id: str, name: str, viewer: User | None
) -> tuple[SourceSet, list[Source]]:
    """The set and its sources; another's private set is 404 like a missing one."""
    source_set = await session.get(SourceSet, (model_id, name))
    if source_set is None:
        raise NotFound(f"no source set {model_id}/{name}")
    require_read(
        source_set.creator_id, source_set.visibility, viewer, f"source set {model_id}/{name}"
    )
    sources = (
        await session.execute(
            select(Source)
            .where(Source.model_id == model_id, Source.set_name == name)
            .order_by(Source.layer, Source.id)
        )
    ).scalars()
    return source_set, list(sources)


async def _uploadable_source(
    session: AsyncSession, user: User, model_id: str, source_id: str
) -> tuple[Source, SourceSet]:
    source = await session.get(Source, (model_id, source_id))
    if source is None:
        raise NotFound(f"no source {model_id}/{source_id}")
    source_set = await session.get(SourceSet, (model_id, source.set_name))
    assert source_set is not None  # the foreign key keeps it
    return source, source_set


@dataclass(frozen=True)
class UploadedActivation:
    tokens: list[str]
    values: list[float]
    bin_min: float | None = None  # the quantile interval it was drawn from, if any
    bin_max: float | None = None
    bin_contains: float | None = None


@dataclass(frozen=True)
class UploadedExplanation:
    text: str
    method: str | None  # None: stored as "uploaded"
    model_name: str | None


@dataclass(frozen=True)
class UploadedFeature:
    index: int
    density: float | None
    activations: list[UploadedActivation] = field(default_factory=list)
    explanations: list[UploadedExplanation] = field(default_factory=list)
    top_logits: list[tuple[str, float]] = field(default_factory=list)
    bottom_logits: list[tuple[str, float]] = field(default_factory=list)


def activation_row(
    model_id: str, source_id: str, index: int, activation: UploadedActivation, where: str
) -> ActivationRow:
    """The stored row; 400 naming `where` (the row's place in the upload) when it is bad."""
    tokens, values = activation.tokens, activation.values
    if not tokens:
        raise InvalidInput(f"{where}: an activation has at least one token")
    if len(tokens) > MAX_TOKENS:
        raise InvalidInput(f"{where}: {len(tokens)} tokens; the limit is {MAX_TOKENS}")
    try:
        joined = "".join(tokens)  # in C; also refuses a token that is not a string
    except TypeError:
        raise InvalidInput(f"{where}: tokens is a list of strings") from None
    if "\x00" in joined:
        raise InvalidInput(f"{where}: a token holds a NUL character, which cannot be stored")
    if len(tokens) != len(values):
        raise InvalidInput(
            f"{where}: {len(tokens)} tokens but {len(values)} values; they pair one to one"
        )
    top_value = max(values)
    return ActivationRow(
        model_id=model_id,
        source_id=source_id,
        index=index,
        tokens=tokens,
        values=values,
        max_value=float(top_value),
        max_value_token_index=values.index(top_value),
        min_value=float(min(values)),
        bin_min=activation.bin_min,
        bin_max=activation.bin_max,
        bin_contains=activation.bin_contains,
        data_index=None,
        data_source=None,
    )


async def upload_features(
    session: AsyncSession,
    user: User,
    model_id: str,
    source_id: str,
    features: Sequence[UploadedFeature],
) -> int:
    """Store new features with their activations, explanations and logits; returns how many.

    409 when an index is already stored (nothing is replaced), 403 unless the caller made
    the source set.
    """
    source, source_set = await _uploadable_source(session, user, model_id, source_id)
    if source_set.creator_id != user.id and not user.is_admin:
        raise Forbidden(f"only the creator of {model_id}/{source_set.name} uploads into it")
    indices = [f.index for f in features]
    if len(set(indices)) != len(indices):
        raise InvalidInput("an index appears twice in the upload")
    taken = (
        await session.execute(
            select(Feature.index).where(
                Feature.model_id == model_id,
                Feature.source_id == source_id,
                Feature.index.in_(indices),
            )
        )
    ).scalars()
    existing = sorted(taken)
    if existing:
        raise Conflict(f"{model_id}/{source_id} already has features {existing[:10]}")
    rows: list[ActivationRow] = []
    for n, feature in enumerate(features):
        made = [
            activation_row(model_id, source_id, feature.index, a, f"features[{n}].activations[{k}]")
            for k, a in enumerate(feature.activations)
        ]
        rows.extend(made)
        session.add(
            Feature(
                model_id=model_id,
                source_id=source_id,
                index=feature.index,
                frac_nonzero=feature.density,
                max_act=max((r.max_value for r in made), default=None),
                pos_str=[t for t, _ in feature.top_logits],
                pos_values=[v for _, v in feature.top_logits],
                neg_str=[t for t, _ in feature.bottom_logits],
                neg_values=[v for _, v in feature.bottom_logits],
            )
        )
    source.d_sae = max(source.d_sae, min(max(indices) + 1, INT32_MAX))
    source.has_dashboards = True
    await session.flush()  # features before what refers to them (no ORM relationship orders it)
    session.add_all(
        Explanation(
            model_id=model_id,
            source_id=source_id,
            index=feature.index,
            description=e.text,
            type_name=e.method or "uploaded",
            explanation_model_name=e.model_name,
            author_id=user.id,
        )
        for feature in features
        for e in feature.explanations
    )
    await session.flush()
    if rows:
        await copy_activations(session, rows)
    return len(features)


async def upload_activations(
    session: AsyncSession,
    user: User,
    model_id: str,
    source_id: str,
    index: int,
    activations: AsyncIterator[UploadedActivation],
) -> int:
    """COPY the streamed `activations` of one feature in batches; returns how many.

    The feature must exist; its owner is the vector's creator for a custom vector, else
    the source set's. A bad row (named by its position) or more than
    `MAX_UPLOAD_ACTIVATIONS` rows raises, and the caller's transaction then keeps nothing.
    """
    source, source_set = await _uploadable_source(session, user, model_id, source_id)
    feature = await session.get(Feature, (model_id, source_id, index))
    if feature is None:
        raise NotFound(f"no feature {model_id}/{source_id}/{index}")
    owner = feature.creator_id if feature.creator_id is not None else source_set.creator_id
    if owner != user.id and not user.is_admin:
        raise Forbidden(f"only the owner of {model_id}/{source_id}/{index} uploads activations")
    count = 0
    best = feature.max_act or 0.0

    async def rows() -> AsyncIterator[ActivationRow]:
        nonlocal count, best
        async for activation in activations:
            if count >= MAX_UPLOAD_ACTIVATIONS:
                raise InvalidInput(
                    f"an upload has at most {MAX_UPLOAD_ACTIVATIONS:,} activations; split it"
                )
            row = activation_row(model_id, source_id, index, activation, f"activations[{count}]")
            best = max(best, row.max_value)
            count += 1
            yield row

    # One COPY fed as rows arrive: the server stores a chunk while the next is read.
    await copy_activations(session, rows())
    feature.max_act = best
    source.has_dashboards = True
    return count
