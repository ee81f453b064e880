"""Export a stored source in Neuronpedia's bulk-export format (the files the webapi imports).

Rows are streamed from the database into `interpedia_formats`' `ExportWriter` in
feature order, so each batch file is closed as soon as its features are written and
memory stays bounded whatever the source's size. Rows without an id of their own
(activations and explanations made here, not imported) get one hashed from their row id
and content: exporting twice gives the same ids, so importing both gives one copy, and
another database's rows with the same row ids but other content do not collide.
"""

import hashlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import NotFound
from interpedia_db.embeddings import NEURONPEDIA_EMBEDDING_MODEL
from interpedia_db.models import (
    Activation,
    Explanation,
    ExplanationEmbedding,
    Feature,
    Model,
    Source,
    SourceRelease,
    SourceSet,
)
from interpedia_formats.neuronpedia_export import (
    BATCH_SIZE,
    ExportWriter,
    NpActivation,
    NpExplanation,
    NpModel,
    NpNeuron,
    NpSource,
    NpSourceRelease,
    NpSourceSet,
    kind_of,
)
from interpedia_trainer import runs


@dataclass
class ExportResult:
    path: Path  # <out>/<model>/<source>: the location to import
    rows: dict[str, int]  # kind (features, activations, ...) → rows written


def _content_id(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]


def neuronpedia_config(source: Source) -> dict[str, Any]:
    """The source's SAELens config with the top-level keys Neuronpedia's importers read."""
    return {
        "hook_name": source.hook_name,
        "hook_layer": source.layer,
        "d_sae": source.d_sae,
        "architecture": source.architecture,
        **(source.saelens_config or {}),
    }


async def _stream(session: AsyncSession, query: Select[Any]) -> AsyncIterator[Any]:
    result = await session.stream(query.execution_options(yield_per=2000))
    async for row in result:
        yield row


async def _write_batched(
    session: AsyncSession,
    writer: ExportWriter,
    kind: str,
    query: Select[Any],  # ordered by feature index; the first column is the stored row
    write: Callable[..., None],  # called with the query's columns
) -> None:
    """Write each stored row, closing a batch file as soon as its features are done."""
    batch = None
    async for row in _stream(session, query):
        index = row[0].index
        if batch is not None and index // BATCH_SIZE != batch:
            writer.finish_batch(kind, batch)
        batch = index // BATCH_SIZE
        write(*row)


def feature_row(f: Feature, source: Source) -> NpNeuron:
    return NpNeuron(
        modelId=source.model_id,
        layer=source.id,
        index=str(f.index),
        sourceSetName=source.set_name,
        maxActApprox=f.max_act,
        hasVector=f.vector is not None,
        vector=list(f.vector or []),
        vectorDefaultSteerStrength=f.default_steer_strength,
        hookName=f.hook_name or source.hook_name,
        topkCosSimIndices=list(f.topk_cos_sim_indices),
        topkCosSimValues=list(f.topk_cos_sim_values),
        pos_str=list(f.pos_str),
        pos_values=list(f.pos_values),
        neg_str=list(f.neg_str),
        neg_values=list(f.neg_values),
        frac_nonzero=f.frac_nonzero,
        freq_hist_data_bar_heights=list(f.freq_hist_heights),
        freq_hist_data_bar_values=list(f.freq_hist_values),
        logits_hist_data_bar_heights=list(f.logits_hist_heights),
        logits_hist_data_bar_values=list(f.logits_hist_values),
    )


def activation_row(a: Activation, source: Source) -> NpActivation:
    content = (a.id, a.index, a.tokens, a.values, a.bin_min)
    return NpActivation(
        modelId=source.model_id,
        layer=source.id,
        index=str(a.index),
        id=a.external_id or _content_id(source.model_id, source.id, *content),
        tokens=list(a.tokens),
        values=list(a.values),
        maxValue=a.max_value,
        maxValueTokenIndex=a.max_value_token_index,
        minValue=a.min_value,
        dataIndex=a.data_index,
        dataSource=a.data_source,
        binMin=a.bin_min,
        binMax=a.bin_max,
        binContains=a.bin_contains,
    )


def explanation_row(
    e: Explanation, source: Source, embedding: Sequence[float] | None = None
) -> NpExplanation:
    """`embedding`: the explanation's vector from Neuronpedia's embedding model, if stored."""
    content = (e.id, e.index, e.type_name, e.description)
    return NpExplanation(
        modelId=source.model_id,
        layer=source.id,
        index=str(e.index),
        id=e.external_id or _content_id(source.model_id, source.id, *content),
        description=e.description,
        embedding=None if embedding is None else [float(v) for v in embedding],
        typeName=e.type_name,
        explanationModelName=e.explanation_model_name,
    )


async def _write_config(
    session: AsyncSession, writer: ExportWriter, model: Model, source: Source
) -> None:
    """release (if the set has one), model, source set and source: one row each."""
    source_set = await session.get(SourceSet, (source.model_id, source.set_name))
    release = (
        await session.get(SourceRelease, source_set.release_name)
        if source_set is not None and source_set.release_name
        else None
    )
    if release is not None:
        writer.write_release(
            NpSourceRelease(
                name=release.name,
                description=release.description,
                urls=list(release.urls),
                creatorName=release.creator_name,
            )
        )
    writer.write_model(
        NpModel(
            id=model.id,
            displayName=model.display_name,
            tlensId=model.hf_name,
            dimension=model.d_model,
            layers=model.layers,
            instruct=model.instruct,
        )
    )
    writer.write_sourceset(
        NpSourceSet(
            modelId=source.model_id,
            name=source.set_name,
            description=source_set.description if source_set else "",
            type=source_set.type if source_set else "sae",
            releaseName=release.name if release else None,
            hasDashboards=source.has_dashboards,
            allowInferenceSearch=source_set.allow_inference_search if source_set else True,
        )
    )
    uri = source.weights_uri or ""  # a folder, or `release:sae_id` for SAELens releases
    release_name, sae_id = (
        uri.split(":", 1) if ":" in uri and not Path(uri).is_absolute() else (None, None)
    )
    writer.write_source(
        NpSource(
            modelId=source.model_id,
            id=source.id,
            setName=source.set_name,
            hasDashboards=source.has_dashboards,
            inferenceEnabled=source.inference_enabled,
            saelensConfig=neuronpedia_config(source),
            saelensRelease=release_name,
            saelensSaeId=sae_id,
            num_prompts=source.num_prompts,
            num_tokens_in_prompt=source.num_tokens_in_prompt,
            dataset=source.dataset,
        )
    )


async def export_source(
    session: AsyncSession, model_id: str, source_id: str, out: Path
) -> ExportResult:
    """Write source `source_id` of `model_id` under `out/<model_id>/<source_id>/`."""
    source = await runs.get_source(session, model_id, source_id)
    model = await session.get(Model, model_id)
    if model is None:
        raise NotFound(f"no model {model_id}")
    # Not a `with` block: a failed export must not get a manifest that calls it complete.
    writer = ExportWriter(out, model_id, source_id)
    await _write_config(session, writer, model, source)

    def rows_of(table: Any, *order: Any) -> Select[Any]:
        where = (table.model_id == model_id, table.source_id == source_id)
        return select(table).where(*where).order_by(*order)

    await _write_batched(
        session,
        writer,
        "features",
        rows_of(Feature, Feature.index),
        lambda f: writer.write_feature(feature_row(f, source)),
    )
    await _write_batched(
        session,
        writer,
        "activations",
        rows_of(Activation, Activation.index, Activation.id),
        lambda a: writer.write_activation(activation_row(a, source)),
    )
    # Neuronpedia's `embedding` field holds its own model's vectors (imported ones round-trip);
    # local-model vectors have another width and meaning, and stay out.
    with_embedding = (
        rows_of(Explanation, Explanation.index, Explanation.id)
        .add_columns(ExplanationEmbedding.embedding)
        .outerjoin(
            ExplanationEmbedding,
            (ExplanationEmbedding.explanation_id == Explanation.id)
            & (ExplanationEmbedding.embedding_model == NEURONPEDIA_EMBEDDING_MODEL),
        )
    )
    await _write_batched(
        session,
        writer,
        "explanations",
        with_embedding,
        lambda e, embedding: writer.write_explanation(explanation_row(e, source, embedding)),
    )
    manifest = writer.close()
    rows: dict[str, int] = {}
    for entry in manifest.files:
        kind = kind_of(entry.path) or entry.path
        rows[kind] = rows.get(kind, 0) + entry.rows
    return ExportResult(writer.root, rows)
