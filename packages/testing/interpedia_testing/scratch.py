"""A throwaway embedded Postgres for benchmarks: started in a scratch folder, always removed."""

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from interpedia_db.embedded import EmbeddedPostgres
from interpedia_testing.net import free_port


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """Unwind through `finally`, so Postgres is stopped when `timeout` ends the run.

    `timeout` signals the process and then its process group, so the second SIGTERM is
    ignored: it must not interrupt the clean-up.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def with_postgres(name: str, work: Callable[[Path, EmbeddedPostgres], None]) -> None:
    """Run `work(scratch folder, server)` on a throwaway embedded Postgres, always cleaned up."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    root = Path(tempfile.mkdtemp(prefix=f"interpedia-bench-{name}-"))
    print(  # noqa: T201 - a benchmark's first line says the machine and its scratch folder
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}, scratch {root}"
    )
    server = EmbeddedPostgres(root / "pg", free_port())
    try:
        server.ensure_running()
        work(root, server)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
