"""Who may see what (Neuronpedia's `Visibility`) on lists, steering vectors, explanations
and uploaded source sets.

- public: listed, found by search, read by anyone;
- unlisted: read by anyone who has its id or link, but not listed or found;
- private: read by its owner and admins only; everyone else is told it does not exist
  (404, as Neuronpedia answers), so a private item's name never leaks.

Changing or deleting is for the owner and admins (403 for anyone else, 401 for nobody).
SAE features follow their source set's visibility; a steering vector has its own.
"""

from dataclasses import replace
from typing import Literal

from sqlalchemy import ColumnElement, false, or_, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import Forbidden, NotFound
from interpedia_db.models import Explanation, Source, SourceSet, User
from interpedia_webapi.dashboards import Dashboard

Visibility = Literal["public", "unlisted", "private"]


def may_read(owner_id: int | None, visibility: str, viewer: User | None) -> bool:
    if visibility != "private" or viewer is None:
        return visibility != "private"
    return viewer.is_admin or owner_id == viewer.id


def require_read(owner_id: int | None, visibility: str, viewer: User | None, what: str) -> None:
    """404 (`no <what>`) unless the viewer may read it."""
    if not may_read(owner_id, visibility, viewer):
        raise NotFound(f"no {what}")


def require_owner(owner_id: int | None, user: User, what: str) -> None:
    """403 unless `user` owns it or is an admin."""
    if owner_id != user.id and not user.is_admin:
        raise Forbidden(f"only the {what}'s creator (or an admin) may change or delete it")


def readable(
    visibility: ColumnElement[str], owner: ColumnElement[int | None], viewer: User | None
) -> ColumnElement[bool]:
    """SQL: rows the viewer may read when they have the id."""
    if viewer is not None and viewer.is_admin:
        return true()
    mine = owner == viewer.id if viewer is not None else false()
    return or_(visibility != "private", mine)


def listed(
    visibility: ColumnElement[str], owner: ColumnElement[int | None], viewer: User | None
) -> ColumnElement[bool]:
    """SQL: rows to show the viewer in listings and search: public ones and their own."""
    if viewer is not None and viewer.is_admin:
        return true()
    mine = owner == viewer.id if viewer is not None else false()
    return or_(visibility == "public", mine)


async def hidden_sources(
    session: AsyncSession, keys: set[tuple[str, str]], viewer: User | None
) -> set[tuple[str, str]]:
    """Which (model, source) of `keys` sit in a private source set the viewer may not read."""
    if not keys or (viewer is not None and viewer.is_admin):
        return set()
    rows = await session.execute(
        select(Source.model_id, Source.id)
        .join(
            SourceSet,
            (SourceSet.model_id == Source.model_id) & (SourceSet.name == Source.set_name),
        )
        .where(
            tuple_(Source.model_id, Source.id).in_(keys),
            ~readable(SourceSet.visibility, SourceSet.creator_id, viewer),
        )
    )
    return {(m, s) for m, s in rows.all()}


async def require_source(
    session: AsyncSession, model_id: str, source_id: str, viewer: User | None
) -> None:
    """404 for a source in a private set the viewer may not read."""
    if await hidden_sources(session, {(model_id, source_id)}, viewer):
        raise NotFound(f"no source {model_id}/{source_id}")


def _explanations(found: list[Explanation], viewer: User | None) -> list[Explanation]:
    return [e for e in found if may_read(e.author_id, e.visibility, viewer)]


async def visible_dashboards(
    session: AsyncSession, found: list[Dashboard], viewer: User | None
) -> list[Dashboard]:
    """`found` without the features the viewer may not read (in a private source set, or
    another's private vector), and without others' private explanations."""
    hidden = await hidden_sources(
        session, {(d.feature.model_id, d.feature.source_id) for d in found}, viewer
    )
    return [
        replace(d, explanations=_explanations(d.explanations, viewer))
        for d in found
        if (d.feature.model_id, d.feature.source_id) not in hidden
        and may_read(d.feature.creator_id, d.feature.visibility, viewer)
    ]


async def visible_dashboard(
    session: AsyncSession, dashboard: Dashboard, viewer: User | None
) -> Dashboard:
    """The dashboard as the viewer may see it; 404 when they may not see the feature."""
    shown = await visible_dashboards(session, [dashboard], viewer)
    if not shown:
        f = dashboard.feature
        raise NotFound(f"no feature {f.model_id}/{f.source_id}/{f.index}")
    return shown[0]
