"""`interpedia explain` and `interpedia search` against the test database."""

import pytest
from typer.testing import CliRunner

from interpedia_autointerp.cli import commands

from ..factories import add_feature, add_model_and_sources

MODEL = "cli-model"


@pytest.fixture(scope="module")
async def cli_feature(db_sessionmaker, cat_records, other_records) -> None:
    async with db_sessionmaker.begin() as session:
        await add_model_and_sources(session, MODEL, {"0-res-cli": "res-cli"})
        await add_feature(session, MODEL, "0-res-cli", 0, cat_records + other_records)
        await add_feature(session, MODEL, "0-res-cli", 1, cat_records)


def test_explain_then_search(cli_feature, database_url: str) -> None:
    runner = CliRunner()
    env = {"DATABASE_URL": database_url, "INTERPEDIA_AUTOINTERP_LLM_MODEL": ""}
    one = runner.invoke(commands, ["explain", MODEL, "0-res-cli", "--index", "0"], env=env)
    assert one.exit_code == 0, one.output
    assert "cli-model/0-res-cli/0:" in one.output and "cat" in one.output
    rest = runner.invoke(commands, ["explain", MODEL, "0-res-cli"], env=env)
    assert rest.exit_code == 0, rest.output
    assert "explained 1, already done 1" in rest.output
    found = runner.invoke(
        commands, ["search", "kittens", "--model", MODEL, "--mode", "semantic"], env=env
    )
    assert found.exit_code == 0, found.output
    assert found.output.count("cli-model/0-res-cli/") == 2
