"""Users, passwords, browser sessions and API keys.

Keys and session tokens are random, handed out once, and stored only as their SHA-256, so
a copy of the database signs nobody in. Passwords are argon2id hashes (argon2-cffi's
defaults, rehashed when those change). A disabled user's keys and sessions stop working.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from interpedia_db.models import ApiKey, User, UserSession

KEY_PREFIX = "ip_"
MIN_PASSWORD = 8
MAX_PASSWORD = 256  # argon2 takes any length; this bounds the work one request can ask for
HASHER = PasswordHasher()
# Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = HASHER.hash("not a password anyone has")


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
            .where(
                ApiKey.key_hash == hash_key(key),
                ApiKey.revoked_at.is_(None),
                User.disabled_at.is_(None),
            )
        )
    ).scalar_one_or_none()
    return row


async def issue_key(session: AsyncSession, user: User, key: str | None = None) -> IssuedKey:
    plain = key or new_key()
    record = ApiKey(user_id=user.id, key_hash=hash_key(plain), prefix=plain[:8])
    session.add(record)
    await session.flush()
    return IssuedKey(user_id=user.id, key_id=record.id, key=plain, prefix=record.prefix)


async def create_user(
    session: AsyncSession, name: str, *, is_admin: bool = False, password: str | None = None
) -> User:
    """A new user; with `password`, one who can sign in on the pages (400 for a weak one)."""
    name = name.strip()
    if not name or len(name) > 128:
        raise InvalidInput("a user name has 1 to 128 characters")
    if password is not None:
        check_password(name, password)
    exists = (await session.execute(select(User).where(User.name == name))).scalar_one_or_none()
    if exists is not None:
        raise Conflict(f"a user named {name!r} exists")
    user = User(
        name=name,
        is_admin=is_admin,
        password_hash=None if password is None else HASHER.hash(password),
    )
    session.add(user)
    await session.flush()
    return user


def check_password(name: str, password: str) -> None:
    """400 unless the password is long enough to resist guessing and is not the name."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password has at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"a password has at most {MAX_PASSWORD} characters")
    if password.strip().lower() == name.strip().lower() or len(set(password)) < 4:
        raise InvalidInput("that password is too easy to guess; use a longer, varied one")


async def authenticate(session: AsyncSession, name: str, password: str) -> User:
    """The user with this name and password; one 401 for a wrong name or password alike."""
    user = (
        await session.execute(select(User).where(User.name == name.strip()))
    ).scalar_one_or_none()
    stored = user.password_hash if user is not None else None
    try:
        HASHER.verify(stored or _DUMMY_HASH, password[:MAX_PASSWORD])
        ok = stored is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        raise Unauthorized("wrong user name or password")
    if user.disabled_at is not None:
        raise Forbidden("this account is disabled; ask an admin")
    if HASHER.check_needs_rehash(stored or ""):
        user.password_hash = HASHER.hash(password)
    return user


async def change_password(session: AsyncSession, user: User, current: str, new: str) -> None:
    """Set a new password (401 unless `current` is right, when there is one) and sign out
    the user's other browsers."""
    if user.password_hash is not None:
        try:
            HASHER.verify(user.password_hash, current[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            raise Unauthorized("the current password is wrong") from None
    check_password(user.name, new)
    user.password_hash = HASHER.hash(new)
    await session.execute(delete(UserSession).where(UserSession.user_id == user.id))


@dataclass(frozen=True)
class SignedIn:
    token: str  # the cookie's value; only its SHA-256 is stored
    csrf: str


async def start_session(session: AsyncSession, user: User, lifetime: timedelta) -> SignedIn:
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(
        UserSession(
            token_hash=hash_key(token),
            user_id=user.id,
            csrf_token=csrf,
            expires_at=datetime.now(UTC) + lifetime,
        )
    )
    await session.flush()
    return SignedIn(token=token, csrf=csrf)


async def user_for_session(session: AsyncSession, token: str) -> tuple[User, str] | None:
    """The signed-in user and the session's CSRF token; None for an unknown, expired or
    disabled user's session."""
    if not token or len(token) > 256:
        return None
    row = (
        await session.execute(
            select(User, UserSession.csrf_token)
            .join(UserSession, UserSession.user_id == User.id)
            .where(
                UserSession.token_hash == hash_key(token),
                UserSession.expires_at > func.now(),
                User.disabled_at.is_(None),
            )
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])


async def end_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(UserSession).where(UserSession.token_hash == hash_key(token)))


def set_display_name(user: User, display_name: str) -> None:
    display_name = display_name.strip()
    if len(display_name) > 128:
        raise InvalidInput("a display name has at most 128 characters")
    user.display_name = display_name


async def manage_user(
    session: AsyncSession,
    admin: User,
    user_id: int,
    *,
    is_admin: bool | None = None,
    disabled: bool | None = None,
) -> User:
    """An admin makes or unmakes an admin, disables or enables a user. Disabling ends the
    user's sessions (their keys are refused while disabled). An admin cannot demote or
    disable themself, so an instance never loses its last admin by accident."""
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    if user.id == admin.id and (is_admin is False or disabled):
        raise InvalidInput("you cannot demote or disable yourself; ask another admin")
    if is_admin is not None:
        user.is_admin = is_admin
    if disabled is not None:
        user.disabled_at = datetime.now(UTC) if disabled else None
        if disabled:
            await session.execute(delete(UserSession).where(UserSession.user_id == user.id))
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
