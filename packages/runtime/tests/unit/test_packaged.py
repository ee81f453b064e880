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
    assert not list((repo / "snapshots").glob(".convert-*"))  # no temp dirs left behind
