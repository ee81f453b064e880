"""The embedded server keeps data across restarts, is shared, and fails with one clear line."""

import os
import socket
import subprocess
import sys

import psycopg

from interpedia_db.embedded import EmbeddedPostgres

CLI = [sys.executable, "-m", "interpedia_core.cli"]


def _run_cli(args, **env):
    full_env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | env
    return subprocess.run(CLI + args, capture_output=True, text=True, env=full_env, timeout=120)


def test_data_survives_stop_and_start(server_root, free_port):
    server = EmbeddedPostgres(server_root / "pg", free_port)
    assert server.ensure_running() is True
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
    server.stop()
    assert server.running_pid() is None

    assert server.ensure_running() is True
    try:
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == ("still here",)
    finally:
        server.stop()


def test_second_process_attaches(server_root, free_port):
    env = {"INTERPEDIA_DATA_DIR": str(server_root), "INTERPEDIA_EMBEDDED_DB_PORT": str(free_port)}
    first = _run_cli(["db", "start"], **env)
    assert first.returncode == 0 and first.stdout.startswith("started"), first.stderr
    try:
        pid = EmbeddedPostgres(server_root / "postgres", free_port).running_pid()
        second = _run_cli(["db", "start"], **env)
        assert second.returncode == 0 and second.stdout.startswith("already running")
        assert EmbeddedPostgres(server_root / "postgres", free_port).running_pid() == pid
    finally:
        assert _run_cli(["db", "stop"], **env).stdout.strip() == "stopped"


def _one_clear_line(result) -> str:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_unreachable_database_url_is_one_line():
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    closed = port.getsockname()[1]
    port.close()
    line = _one_clear_line(
        _run_cli(["db", "migrate"], DATABASE_URL=f"postgresql://u:secret@127.0.0.1:{closed}/x")
    )
    assert "cannot connect to the database" in line and "DATABASE_URL" in line
    assert "secret" not in line


def test_port_in_use_is_one_line(server_root):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        line = _one_clear_line(
            _run_cli(
                ["db", "start"],
                INTERPEDIA_DATA_DIR=str(server_root),
                INTERPEDIA_EMBEDDED_DB_PORT=str(busy.getsockname()[1]),
            )
        )
    assert "in use" in line and "INTERPEDIA_EMBEDDED_DB_PORT" in line


def test_unwritable_data_dir_is_one_line():
    line = _one_clear_line(_run_cli(["db", "start"], INTERPEDIA_DATA_DIR="/proc/interpedia"))
    assert "INTERPEDIA_DATA_DIR" in line
