"""Comments on features and lists, and bookmarks: what people on one instance say about
features and which ones they keep track of (Neuronpedia's `Comment`, `ListComment`,
`Bookmark`).

Anyone may read comments (they show on the feature and list pages); only their author or
an admin deletes one. A bookmark is private to its owner. Texts are trimmed and bounded
here, as Neuronpedia bounds them, so every caller (route, page, script) gets the same
message.
"""

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import Forbidden, InvalidInput, NotFound
from interpedia_db.models import Bookmark, Comment, Feature, FeatureList, ListComment, User
from interpedia_webapi.feature_lists import FeatureRef

# Neuronpedia's bounds: a feature comment 5 to 1,024 characters, a list comment 2 or more.
FEATURE_COMMENT_CHARS = (5, 1024)
LIST_COMMENT_CHARS = (2, 1024)


def _text(text: str, bounds: tuple[int, int]) -> str:
    text = text.strip()
    low, high = bounds
    if not low <= len(text) <= high:
        raise InvalidInput(f"a comment has {low} to {high:,} characters; this one has {len(text)}")
    return text


async def _feature(session: AsyncSession, ref: FeatureRef) -> Feature:
    feature = await session.get(Feature, (ref.model_id, ref.source_id, ref.index))
    if feature is None:
        raise NotFound(f"no feature {ref.model_id}/{ref.source_id}/{ref.index}")
    return feature


async def _delete_authored(
    session: AsyncSession,
    user: User,
    table: type[Comment] | type[ListComment],
    comment_id: int,
    what: str,
) -> None:
    """Delete a comment of `table` if `user` wrote it or is an admin."""
    comment = await session.get(table, comment_id)
    if comment is None:
        raise NotFound(f"no {what} {comment_id}")
    if comment.user_id != user.id and not user.is_admin:
        raise Forbidden("only the comment's author (or an admin) may delete it")
    await session.delete(comment)


async def add_comment(session: AsyncSession, user: User, ref: FeatureRef, text: str) -> Comment:
    await _feature(session, ref)
    comment = Comment(
        model_id=ref.model_id,
        source_id=ref.source_id,
        index=ref.index,
        text=_text(text, FEATURE_COMMENT_CHARS),
        user_id=user.id,
        user=user,
    )
    session.add(comment)
    await session.flush()
    return comment


async def feature_comments(session: AsyncSession, ref: FeatureRef) -> list[Comment]:
    """A feature's comments, oldest first (a conversation reads down)."""
    rows = await session.execute(
        select(Comment).where(*ref.where(Comment)).order_by(Comment.created_at, Comment.id)
    )
    return list(rows.scalars())


async def delete_comment(session: AsyncSession, user: User, comment_id: int) -> None:
    await _delete_authored(session, user, Comment, comment_id, "comment")


async def add_list_comment(
    session: AsyncSession, user: User, feature_list: FeatureList, text: str
) -> ListComment:
    comment = ListComment(
        list_id=feature_list.id, text=_text(text, LIST_COMMENT_CHARS), user_id=user.id, user=user
    )
    session.add(comment)
    await session.flush()
    return comment


async def list_comments(session: AsyncSession, list_id: str) -> list[ListComment]:
    rows = await session.execute(
        select(ListComment)
        .where(ListComment.list_id == list_id)
        .order_by(ListComment.created_at, ListComment.id)
    )
    return list(rows.scalars())


async def delete_list_comment(session: AsyncSession, user: User, comment_id: int) -> None:
    await _delete_authored(session, user, ListComment, comment_id, "list comment")


async def add_bookmark(session: AsyncSession, user: User, ref: FeatureRef) -> Bookmark:
    """The caller's bookmark of the feature, made if it was not there."""
    await _feature(session, ref)
    key = {
        "user_id": user.id,
        "model_id": ref.model_id,
        "source_id": ref.source_id,
        "index": ref.index,
    }
    await session.execute(pg_insert(Bookmark).values(**key).on_conflict_do_nothing())
    return (await session.execute(select(Bookmark).filter_by(**key))).scalar_one()


async def delete_bookmark(session: AsyncSession, user: User, ref: FeatureRef) -> None:
    """Remove the caller's bookmark; one nobody made is a 404 (another person's
    bookmark of the same feature is theirs and is not touched)."""
    result = await session.execute(
        delete(Bookmark).where(Bookmark.user_id == user.id, *ref.where(Bookmark))
    )
    if not result.rowcount:
        raise NotFound(f"you have no bookmark of {ref.model_id}/{ref.source_id}/{ref.index}")


async def bookmarks_of(session: AsyncSession, user: User) -> list[Bookmark]:
    """The caller's bookmarks, newest first."""
    rows = await session.execute(
        select(Bookmark)
        .where(Bookmark.user_id == user.id)
        .order_by(Bookmark.created_at.desc(), Bookmark.id.desc())
    )
    return list(rows.scalars())
