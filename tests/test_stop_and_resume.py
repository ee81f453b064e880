"""Ctrl-C / SIGTERM stop the long commands within seconds, and rerunning them resumes.

Real signals to real `interpedia` subprocesses on the packaged SmolLM2, against the test
database, in the order the demo runs them: `train --register` (stopped between steps,
checkpoint kept without `--checkpoint-every`, run marked stopped, the rerun continues its
step counter), `dashboards` (the pass so far kept and continued), `explain` (what is
stored stays, the rerun does the rest) and the demo itself (its step is stopped, not
killed). The bound on the time from signal to exit is generous, for a loaded CPU shared
with other test runs: the contract is "within seconds", two on a quiet machine.
"""

import json
import os
import re
import shutil
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from interpedia_testing.commands import RunningCommand

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
INTERPEDIA = str(Path(sys.executable).parent / "interpedia")
MODEL, SOURCE = "smollm2-135m", "6-stop"
STOP_WITHIN_S = 5.0
TRAIN_STEPS = 12


def _query(database_url: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchall()


def _stopped_in_time(running: RunningCommand, signum: int) -> str:
    """Send `signum`; assert the command exits within the bound, as a stopped command does."""
    code, seconds = running.stop(signum)
    assert code == 128 + signum, running.tail()
    assert seconds < STOP_WITHIN_S, f"took {seconds:.1f}s to stop:\n{running.tail()}"
    return running.output


@pytest.fixture(scope="module")
def env(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    corpus = tmp_path_factory.mktemp("corpus")
    speeches = sorted((ROOT / ".cache" / "corpora" / "sotu").glob("*.txt"))
    if not speeches:
        pytest.skip("no State of the Union corpus in .cache (run `make setup`)")
    for speech in speeches[-8:]:
        shutil.copy(speech, corpus)
    data = tmp_path_factory.mktemp("data")
    return os.environ | {
        "DATABASE_URL": database_url,
        "INTERPEDIA_DATA_DIR": str(data),
        "INTERPEDIA_TRAINER_CORPUS": str(corpus),
        "HF_HUB_OFFLINE": "1",
    }


@dataclass
class Training:
    command: list[str]
    out: Path
    stopped_output: str
    stopped_step: int
    run_id: int


def _run_of(database_url: str, out: Path) -> list[tuple]:
    return _query(
        database_url,
        "SELECT id, status, error, source_id FROM training_runs WHERE config->>'out' = %s",
        str(out),
    )


def _last_step(database_url: str, out: Path) -> int:
    rows = _query(
        database_url,
        "SELECT max(m.step) FROM training_metrics m JOIN training_runs r ON r.id = m.run_id "
        "WHERE r.config->>'out' = %s",
        str(out),
    )
    return rows[0][0] or 0


@pytest.fixture(scope="module")
def stopped_training(
    env: dict[str, str], database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Training:
    folder = tmp_path_factory.mktemp("train")
    config = folder / "config.json"
    config.write_text(json.dumps({"log_every_steps": 1}))
    out = folder / SOURCE
    command = [
        INTERPEDIA,
        "train",
        "--config",
        str(config),
        "--hook",
        "blocks.6.hook_resid_post",
        "--d-sae",
        "576",
        "--k",
        "16",
        "--batch-size",
        "512",
        "--context-size",
        "64",
        "--total-tokens",
        str(512 * TRAIN_STEPS),
        "--max-contexts",
        "400",
        "--out",
        str(out),
        "--register",
        "stop",
    ]
    running = RunningCommand(command, env)
    try:
        running.wait_until(lambda: _last_step(database_url, out) >= 2, "two steps", 600)
        output = _stopped_in_time(running, signal.SIGINT)
    finally:
        running.kill()
    step = re.search(r"stopped by SIGINT at step (\d+)", output)
    assert step, output[-3000:]
    [(run_id, *_)] = _run_of(database_url, out)
    return Training(command, out, output, int(step.group(1)), run_id)


def test_train_stops_between_steps_with_a_checkpoint_and_a_stopped_run(
    stopped_training: Training, database_url: str
) -> None:
    assert stopped_training.stopped_step >= 2
    checkpoint = stopped_training.out / "checkpoints" / "latest" / "trainer_state.pt"
    assert checkpoint.exists()  # with no --checkpoint-every
    [(_, status, error, _)] = _run_of(database_url, stopped_training.out)
    assert status == "stopped" and "stopped by SIGINT" in error


@pytest.fixture(scope="module")
def resumed_training(stopped_training: Training, env: dict[str, str]) -> str:
    rerun = RunningCommand(stopped_training.command, env)
    assert rerun.finish(timeout=1200) == 0, rerun.tail()
    return rerun.output


def test_rerunning_train_resumes_the_same_run_from_its_step(
    stopped_training: Training, resumed_training: str, database_url: str
) -> None:
    assert f"resuming run {stopped_training.run_id} " in resumed_training
    assert f"resumed at step {stopped_training.stopped_step} " in resumed_training
    [(run_id, status, error, source_id)] = _run_of(database_url, stopped_training.out)
    assert (run_id, status, error, source_id) == (
        stopped_training.run_id,
        "succeeded",
        None,
        SOURCE,
    )
    assert _last_step(database_url, stopped_training.out) == TRAIN_STEPS


DASHBOARD_PROMPTS = 64


def _prompts_done(output: str) -> list[int]:
    """The prompt counts the dashboards progress bar showed, in order."""
    return [int(n) for n in re.findall(rf"\|\s*(\d+)/{DASHBOARD_PROMPTS}\b", output)]


@dataclass
class Dashboards:
    saved: int  # prompts the stopped pass had done
    checkpoints_after_stop: list[str]
    checkpoints_after_rerun: list[str]
    rerun_output: str


@pytest.fixture(scope="module")
def dashboards(resumed_training: str, env: dict[str, str]) -> Dashboards:
    command = [INTERPEDIA, "dashboards", "--source", SOURCE, "--context-size", "64"]
    command += ["--n-prompts", str(DASHBOARD_PROMPTS), "--batch-size", "8"]
    running = RunningCommand(command, env)
    try:
        running.wait_until(lambda: any(_prompts_done(running.output)), "a batch of prompts", 600)
        output = _stopped_in_time(running, signal.SIGTERM)
    finally:
        running.kill()
    kept = re.search(rf"stopped by SIGTERM after (\d+) of {DASHBOARD_PROMPTS} prompts", output)
    assert kept, output[-3000:]
    checkpoints = Path(env["INTERPEDIA_DATA_DIR"]) / "checkpoints"
    after_stop = sorted(p.name for p in checkpoints.iterdir())
    rerun = RunningCommand(command, env)
    assert rerun.finish(timeout=1200) == 0, rerun.tail()
    after_rerun = sorted(p.name for p in checkpoints.iterdir())
    return Dashboards(int(kept.group(1)), after_stop, after_rerun, rerun.output)


def test_dashboards_stop_on_sigterm_and_the_rerun_continues_the_pass(
    dashboards: Dashboards, database_url: str
) -> None:
    assert dashboards.checkpoints_after_stop == [f"dashboards-{MODEL}-{SOURCE}-0-576.pt"]
    shown = [n for n in _prompts_done(dashboards.rerun_output) if n > 0]
    assert shown and min(shown) > dashboards.saved  # continued, not started over
    assert shown[-1] == DASHBOARD_PROMPTS and dashboards.checkpoints_after_rerun == []
    [(has_dashboards,)] = _query(
        database_url, "SELECT has_dashboards FROM sources WHERE id = %s", SOURCE
    )
    assert has_dashboards


def _explained(database_url: str) -> int:
    return _query(
        database_url,
        "SELECT count(DISTINCT index) FROM explanations WHERE model_id = %s AND source_id = %s",
        MODEL,
        SOURCE,
    )[0][0]


def test_explain_stops_on_sigint_and_the_rerun_explains_the_rest(
    dashboards: Dashboards, env: dict[str, str], database_url: str
) -> None:
    command = [INTERPEDIA, "explain", MODEL, SOURCE, "--method", "offline"]
    running = RunningCommand(command, env)
    try:
        progress = running.wait_for_output(r"\r([1-9]\d+)/(\d+) features", timeout=600)
        output = _stopped_in_time(running, signal.SIGINT)
    finally:
        running.kill()
    total = int(progress.group(2))
    assert re.search(r"stopped by SIGINT with \d+ done and \d+ left", output), output[-3000:]
    kept = _explained(database_url)
    assert 0 < kept < total

    rerun = RunningCommand(command, env)
    assert rerun.finish(timeout=1200) == 0, rerun.tail()
    counts = re.search(
        rf"explained (\d+), already done {kept}, failed (\d+) of {total} ", rerun.output
    )
    assert counts, rerun.tail()
    explained, failed = int(counts.group(1)), int(counts.group(2))
    assert kept + explained + failed == total
    assert _explained(database_url) == kept + explained


@pytest.fixture
def demo_env(env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    yield env | {
        "INTERPEDIA_DATA_DIR": str(tmp_path),
        "INTERPEDIA_DEMO_D_SAE": "512",
        "INTERPEDIA_DEMO_TRAIN_TOKENS": "98304",
        "INTERPEDIA_WEBAPI_ADMIN_BOOTSTRAP_KEY": "stop-test-admin-key-0123456789",
    }


def test_ctrl_c_of_the_demo_stops_its_training_step_with_a_checkpoint(
    demo_env: dict[str, str], database_url: str
) -> None:
    out = Path(demo_env["INTERPEDIA_DATA_DIR"]) / "saes" / "6-res-demo"
    running = RunningCommand([INTERPEDIA, "demo"], demo_env, cwd=ROOT)
    try:
        running.wait_for_output(r"\btraining\n", timeout=600)  # the stage, inside the loop
        code, seconds = running.stop(signal.SIGINT)
    finally:
        running.kill()
    assert code == 128 + signal.SIGINT, running.tail()
    assert seconds < STOP_WITHIN_S, f"took {seconds:.1f}s to stop:\n{running.tail()}"
    assert "stopped by SIGINT during 'train the demo SAE'" in running.output, running.tail()
    [(_, status, *_)] = _run_of(database_url, out)
    assert status == "stopped"  # the step stopped itself: it was not killed
    assert (out / "checkpoints" / "latest" / "trainer_state.pt").exists()
