"""Users and API keys. Keys are random, shown once, and stored only as their SHA-256."""

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import Conflict, InvalidInput, NotFound
from interpedia_db.models import ApiKey, User

KEY_PREFIX = "ip_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class IssuedKey:
    user_id: int
    key_id: int
    key: str  # the only time the plain key exists
    prefix: str


async def user_for_key(session: AsyncSession, key: str) -> User | None:
    if not key or len(key) > 256:
        return None
    row = (
        await session.execute(
            select(User)
            .join(ApiKey, ApiKey.user_id == User.id)
            .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
        )
    ).scalar_one_or_none()
    return row


async def issue_key(session: AsyncSession, user: User, key: str | None = None) -> IssuedKey:
    plain = key or new_key()
    record = ApiKey(user_id=user.id, key_hash=hash_key(plain), prefix=plain[:8])
    session.add(record)
    await session.flush()
    return IssuedKey(user_id=user.id, key_id=record.id, key=plain, prefix=record.prefix)


async def create_user(session: AsyncSession, name: str, *, is_admin: bool = False) -> User:
    name = name.strip()
    if not name or len(name) > 128:
        raise InvalidInput("a user name has 1 to 128 characters")
    exists = (await session.execute(select(User).where(User.name == name))).scalar_one_or_none()
    if exists is not None:
        raise Conflict(f"a user named {name!r} exists")
    user = User(name=name, is_admin=is_admin)
    session.add(user)
    await session.flush()
    return user


async def ensure_bootstrap_admin(session: AsyncSession, key: str) -> None:
    """Create the `admin` user with `key` unless that key is already known."""
    if await user_for_key(session, key) is not None:
        return
    user = (await session.execute(select(User).where(User.name == "admin"))).scalar_one_or_none()
    if user is None:
        user = await create_user(session, "admin", is_admin=True)
    elif not user.is_admin:
        user.is_admin = True
    existing = (
        await session.execute(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    ).scalar_one_or_none()
    if existing is not None:  # revoked earlier: the bootstrap key brings it back
        existing.revoked_at = None
        existing.user_id = user.id
        return
    await issue_key(session, user, key)


async def list_users(session: AsyncSession) -> list[tuple[User, int]]:
    rows = await session.execute(
        select(User, func.count(ApiKey.id))
        .outerjoin(ApiKey, (ApiKey.user_id == User.id) & ApiKey.revoked_at.is_(None))
        .group_by(User.id)
        .order_by(User.id)
    )
    return [(u, n) for u, n in rows.all()]


async def list_keys(session: AsyncSession, user_id: int) -> list[ApiKey]:
    return list(
        (
            await session.execute(
                select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id)
            )
        ).scalars()
    )


async def revoke_key(session: AsyncSession, key_id: int, *, owner: User) -> None:
    key = await session.get(ApiKey, key_id)
    if key is None or (key.user_id != owner.id and not owner.is_admin):
        raise NotFound(f"no key {key_id}")
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=func.now()))
