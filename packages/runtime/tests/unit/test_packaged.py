"""The GGUF → HF-cache conversion runs once, even when two callers race."""

import threading
import time
from pathlib import Path

import pytest

from interpedia_runtime import packaged


def test_conversion_runs_once_under_concurrency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []

    def fake_convert(gguf: Path, out_dir: Path) -> None:
        calls.append(out_dir)
        time.sleep(0.2)  # long enough for the other caller to be waiting on the lock
        (out_dir / "config.json").write_text("{}")
        (out_dir / "model.safetensors").write_bytes(b"x")

    monkeypatch.setattr(packaged, "hub_cache_dir", lambda: tmp_path)
    monkeypatch.setattr(packaged, "find_gguf_file", lambda: tmp_path / "model.gguf")
    monkeypatch.setattr(packaged, "_convert", fake_convert)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(packaged.ensure_packaged_model()))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [packaged.PACKAGED_HUB_ID] * 2
    assert len(calls) == 1
    repo = tmp_path / "models--HuggingFaceTB--SmolLM2-135M-Instruct"
    assert (repo / "refs" / "main").read_text() == packaged.PACKAGED_REVISION
    assert packaged.is_prepared()
    # No temporary folder left behind: the snapshot alone.
    assert [p.name for p in (repo / "snapshots").iterdir()] == [packaged.PACKAGED_REVISION]


def test_snapshot_configs_name_what_transformers_4_reads(tmp_path: Path) -> None:
    """The rope base survives under 4.x's key and the tokenizer class is one 4.x knows."""
    import json

    (tmp_path / "config.json").write_text(
        json.dumps({"rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}})
    )
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "TokenizersBackend", "bos_token": "<|im_start|>"})
    )
    packaged.make_readable_by_transformers_4(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    tokenizer = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["rope_theta"] == 100000.0
    assert config["rope_parameters"]["rope_theta"] == 100000.0
    assert tokenizer["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tokenizer["model_input_names"] == ["input_ids", "attention_mask"]
    assert tokenizer["bos_token"] == "<|im_start|>"


def test_another_checkouts_ref_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache shared with a checkout at another revision keeps that checkout's refs/main."""
    repo = tmp_path / "models--HuggingFaceTB--SmolLM2-135M-Instruct"
    (repo / "snapshots" / "older-revision").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("older-revision")

    def fake_convert(gguf: Path, out_dir: Path) -> None:
        (out_dir / "config.json").write_text("{}")
        (out_dir / "model.safetensors").write_bytes(b"x")

    monkeypatch.setattr(packaged, "hub_cache_dir", lambda: tmp_path)
    monkeypatch.setattr(packaged, "find_gguf_file", lambda: tmp_path / "model.gguf")
    monkeypatch.setattr(packaged, "_convert", fake_convert)
    packaged.ensure_packaged_model()
    assert packaged.is_prepared()
    assert (repo / "refs" / "main").read_text() == "older-revision"
