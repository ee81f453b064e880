"""`replacing_folder`: the target is replaced whole, or left as it was."""

from pathlib import Path

import pytest

from interpedia_core.folders import replacing_folder


def _old_target(tmp_path: Path) -> Path:
    target = tmp_path / "set"
    target.mkdir()
    (target / "old.txt").write_text("old")
    return target


def test_on_success_the_target_is_replaced_whole(tmp_path: Path) -> None:
    target = _old_target(tmp_path)
    with replacing_folder(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").read_text() == "old"  # readers see the old one meanwhile
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


def test_a_missing_target_and_its_parents_are_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "set"
    with replacing_folder(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert (target / "new.txt").read_text() == "new"


def test_on_an_exception_the_old_target_is_untouched_and_no_temp_folder_is_left(
    tmp_path: Path,
) -> None:
    target = _old_target(tmp_path)
    with pytest.raises(RuntimeError, match="half written"), replacing_folder(target) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("half written")
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    assert (target / "old.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["set"]
