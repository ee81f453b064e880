"""Lists of features: create, add, remove, share by link (the id is random and unguessable)."""

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import InvalidInput, NotFound
from interpedia_db.models import Feature, FeatureList, FeatureListItem, User
from interpedia_webapi import visibility
from interpedia_webapi.schemas import FeatureKey, parse_index

MAX_ITEMS_PER_CALL = 500


@dataclass(frozen=True)
class FeatureRef:
    model_id: str
    source_id: str
    index: int
    description: str = ""

    @classmethod
    def of(cls, key: FeatureKey, description: str = "") -> "FeatureRef":
        """The feature a request names (Neuronpedia's modelId / layer / index)."""
        return cls(key.modelId, key.layer, parse_index(key.index), description)

    def where(self, table: Any) -> list[ColumnElement[bool]]:
        """The clauses that pick this feature's rows of `table` (keyed like `features`)."""
        return [
            table.model_id == self.model_id,
            table.source_id == self.source_id,
            table.index == self.index,
        ]


def _name_and_description(name: str, description: str) -> tuple[str, str]:
    name = name.strip()
    if not name or len(name) > 256:
        raise InvalidInput("a list name has 1 to 256 characters")
    if len(description) > 10_000:
        raise InvalidInput("a list description has at most 10,000 characters")
    return name, description


async def create_list(
    session: AsyncSession,
    owner: User,
    name: str,
    description: str = "",
    default_test_text: str | None = None,
    shown: visibility.Visibility = "public",
) -> FeatureList:
    name, description = _name_and_description(name, description)
    feature_list = FeatureList(
        id=secrets.token_urlsafe(12),
        name=name,
        description=description,
        default_test_text=default_test_text,
        owner_id=owner.id,
        visibility=shown,
    )
    session.add(feature_list)
    await session.flush()
    return feature_list


def update_list(
    feature_list: FeatureList,
    name: str,
    description: str,
    default_test_text: str | None,
    shown: visibility.Visibility | None = None,
) -> None:
    """Neuronpedia's `list/update`: name and description are replaced, the test text and
    the visibility only when one is given (it sends null to leave the text)."""
    feature_list.name, feature_list.description = _name_and_description(name, description)
    if default_test_text is not None:
        feature_list.default_test_text = default_test_text
    if shown is not None:
        feature_list.visibility = shown


async def edit_feature(
    session: AsyncSession, feature_list: FeatureList, ref: FeatureRef
) -> FeatureListItem:
    """Set the list's note on one of its features (`ref.description`)."""
    item = await session.get(
        FeatureListItem, (feature_list.id, ref.model_id, ref.source_id, ref.index)
    )
    if item is None:
        raise NotFound("that feature is not in the list")
    item.description = ref.description
    await session.flush()
    return item


async def get_list(session: AsyncSession, list_id: str, viewer: User | None) -> FeatureList:
    """The list, if the viewer may read it (another's private list is 404 like a missing one)."""
    feature_list = await session.get(FeatureList, list_id)
    if feature_list is None:
        raise NotFound(f"no list {list_id}")
    visibility.require_read(
        feature_list.owner_id, feature_list.visibility, viewer, f"list {list_id}"
    )
    return feature_list


async def owned_list(session: AsyncSession, list_id: str, user: User) -> FeatureList:
    feature_list = await session.get(FeatureList, list_id)
    if feature_list is None:
        raise NotFound(f"no list {list_id}")
    visibility.require_owner(feature_list.owner_id, user, "list")
    return feature_list


async def list_items(session: AsyncSession, list_id: str) -> list[FeatureListItem]:
    return list(
        (
            await session.execute(
                select(FeatureListItem)
                .where(FeatureListItem.list_id == list_id)
                .order_by(FeatureListItem.added_at, FeatureListItem.index)
            )
        ).scalars()
    )


async def add_features(
    session: AsyncSession, feature_list: FeatureList, refs: list[FeatureRef]
) -> list[FeatureListItem]:
    if len(refs) > MAX_ITEMS_PER_CALL:
        raise InvalidInput(f"add at most {MAX_ITEMS_PER_CALL} features at a time")
    for ref in refs:
        if await session.get(Feature, (ref.model_id, ref.source_id, ref.index)) is None:
            raise NotFound(f"no feature {ref.model_id}/{ref.source_id}/{ref.index}")
    if refs:
        await session.execute(
            pg_insert(FeatureListItem).on_conflict_do_nothing(),
            [
                {
                    "list_id": feature_list.id,
                    "model_id": r.model_id,
                    "source_id": r.source_id,
                    "index": r.index,
                    "description": r.description[:2000],
                }
                for r in refs
            ],
        )
    wanted = {(r.model_id, r.source_id, r.index) for r in refs}
    return [
        i
        for i in await list_items(session, feature_list.id)
        if (i.model_id, i.source_id, i.index) in wanted
    ]


async def remove_feature(session: AsyncSession, feature_list: FeatureList, ref: FeatureRef) -> None:
    result = await session.execute(
        delete(FeatureListItem).where(
            FeatureListItem.list_id == feature_list.id, *ref.where(FeatureListItem)
        )
    )
    if not result.rowcount:
        raise NotFound("that feature is not in the list")


async def delete_list(session: AsyncSession, feature_list: FeatureList) -> None:
    await session.delete(feature_list)


async def lists_of(session: AsyncSession, user: User) -> list[FeatureList]:
    return list(
        (
            await session.execute(
                select(FeatureList)
                .where(FeatureList.owner_id == user.id)
                .order_by(FeatureList.created_at.desc())
            )
        ).scalars()
    )


async def recent_lists(
    session: AsyncSession, viewer: User | None, limit: int = 50
) -> list[FeatureList]:
    """The newest public lists, and the viewer's own."""
    return list(
        (
            await session.execute(
                select(FeatureList)
                .where(visibility.listed(FeatureList.visibility, FeatureList.owner_id, viewer))
                .order_by(FeatureList.created_at.desc())
                .limit(limit)
            )
        ).scalars()
    )
