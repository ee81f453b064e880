"""Who may read a public, unlisted or private item, and the password rules, without a
database."""

import pytest

from interpedia_core.errors import Forbidden, InvalidInput, NotFound
from interpedia_db.models import User
from interpedia_webapi.accounts import check_password
from interpedia_webapi.visibility import may_read, require_owner, require_read

OWNER, OTHER, ADMIN = (
    User(id=1, is_admin=False),
    User(id=2, is_admin=False),
    User(id=3, is_admin=True),
)


@pytest.mark.parametrize(
    ("visibility", "viewer", "readable"),
    [
        ("public", None, True),
        ("unlisted", None, True),
        ("private", None, False),
        ("private", OTHER, False),
        ("private", OWNER, True),
        ("private", ADMIN, True),
    ],
)
def test_who_reads_what(visibility: str, viewer: User | None, readable: bool) -> None:
    assert may_read(OWNER.id, visibility, viewer) is readable


def test_others_get_404_on_reads_and_403_on_changes() -> None:
    with pytest.raises(NotFound, match="no list abc"):
        require_read(OWNER.id, "private", OTHER, "list abc")
    with pytest.raises(Forbidden, match="creator"):
        require_owner(OWNER.id, OTHER, "list")
    require_owner(OWNER.id, ADMIN, "list")  # admins can
    require_owner(OWNER.id, OWNER, "list")


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "at least 8"),
        ("seven77", "at least 8"),
        ("x" * 257, "at most 256"),
        ("Walter-White", "too easy"),
        ("abababababab", "too easy"),
    ],
)
def test_weak_passwords_are_refused(password: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        check_password("walter-white", password)
    check_password("walter-white", "correct horse battery")
