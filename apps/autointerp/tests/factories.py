"""Factories: rows for the integration suite (real embedded Postgres, migrated)."""

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_autointerp.examples import ActivationRecord
from interpedia_db.models import Activation, Feature, Model, Source, SourceSet


async def add_model_and_sources(
    session: AsyncSession, model_id: str, sources: dict[str, str]
) -> None:
    """A model with `sources` (source id → source set name)."""
    session.add(Model(id=model_id, display_name=model_id, layers=2, d_model=8))
    for set_name in sorted(set(sources.values())):
        session.add(SourceSet(model_id=model_id, name=set_name))
    await session.flush()
    for source_id, set_name in sources.items():
        session.add(
            Source(
                model_id=model_id,
                id=source_id,
                set_name=set_name,
                hook_name="blocks.0.hook_resid_post",
                layer=0,
                architecture="standard",
                d_sae=64,
            )
        )
    await session.flush()


async def add_feature(
    session: AsyncSession,
    model_id: str,
    source_id: str,
    index: int,
    records: Sequence[ActivationRecord] = (),
    logit_tokens: Sequence[str] = (),
) -> None:
    session.add(
        Feature(model_id=model_id, source_id=source_id, index=index, pos_str=list(logit_tokens))
    )
    await session.flush()
    for record in records:
        peak = max(range(len(record.values)), key=lambda i: record.values[i])
        session.add(
            Activation(
                model_id=model_id,
                source_id=source_id,
                index=index,
                tokens=record.tokens,
                values=record.values,
                max_value=record.max_value,
                max_value_token_index=peak,
            )
        )
    await session.flush()
