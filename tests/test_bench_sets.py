"""The bench's cached data sets are remade when the script that makes them changes: a set from an
older recipe (e.g. a barge-in set from before the human voices) would measure the wrong thing."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.bench import sets


def test_a_cached_set_is_kept_until_its_recipe_changes(tmp_path: Path) -> None:
    recipe = tmp_path / "make_set.sh"
    recipe.write_text("echo one\n")
    d = tmp_path / "set"
    made: list[str] = []

    def make() -> None:
        d.mkdir(exist_ok=True)
        (d / "labels.json").write_text(recipe.read_text())
        made.append(recipe.read_text())

    sets.ensure(d, "labels.json", [recipe], make)
    sets.ensure(d, "labels.json", [recipe], make)
    assert made == ["echo one\n"]  # the second run reuses the cache
    recipe.write_text("echo two\n")
    sets.ensure(d, "labels.json", [recipe], make)
    assert made == ["echo one\n", "echo two\n"]
    (d / "labels.json").unlink()  # an unfinished set is made again too
    sets.ensure(d, "labels.json", [recipe], make)
    assert len(made) == 3


def test_a_failed_make_leaves_no_stamp(tmp_path: Path) -> None:
    recipe = tmp_path / "make_set.sh"
    recipe.write_text("exit 1\n")
    d = tmp_path / "set"
    d.mkdir()
    (d / "labels.json").write_text("{}")  # what an old run left

    def make() -> None:
        raise RuntimeError("espeak-ng missing")

    with pytest.raises(RuntimeError):
        sets.ensure(d, "labels.json", [recipe], make)
    assert not (d / sets.STAMP).exists()
