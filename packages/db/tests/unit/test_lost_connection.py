"""Which errors mean the database went away (retry later) and which mean it refused the data."""

import errno

import asyncpg
import pytest

from interpedia_db.connect import lost_connection


def _chained(outer: Exception, cause: BaseException) -> Exception:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    ("error", "gone"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), True),
        (OSError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 5432)"), True),
        (asyncpg.ConnectionDoesNotExistError("connection was closed in the middle"), True),
        (asyncpg.AdminShutdownError("terminating connection"), True),
        (_chained(RuntimeError("rollback failed"), ConnectionResetError()), True),
        (asyncpg.UniqueViolationError("duplicate key"), False),
        (asyncpg.ForeignKeyViolationError("violates foreign key"), False),
        (asyncpg.QueryCanceledError("statement timeout"), False),
        (FileNotFoundError(errno.ENOENT, "no such file"), False),
    ],
)
def test_lost_connection(error: BaseException, gone: bool) -> None:
    assert lost_connection(error) is gone
