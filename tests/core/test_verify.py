"""Verification of rewritten copies: quick checks and the streamed deep comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from straxd.core.recompress import recompress
from straxd.core.strax_files import metadata_filename
from straxd.core.verify import VerifyFailed, deep_compare, quick_check
from tests.core.test_recompress import source_folder


def test_good_copy_passes(tmp_path: Path) -> None:
    """Rows with NaN areas compare equal to themselves."""
    source = source_folder(tmp_path / "pre", [300, 0, 500, 250])
    copy = recompress(source, tmp_path / "out", "zstd", 0.01).folder
    assert quick_check(source, copy) == 1050
    deep_compare(source, copy)


def _edit_metadata(folder: Path, change: dict[str, object], chunk: dict[str, object]) -> None:
    path = folder / metadata_filename(folder.name)
    meta = json.loads(path.read_text())
    meta.update(change)
    meta["chunks"][0].update(chunk)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("change", "chunk", "message"),
    [
        ({"exception": "disk full"}, {}, "writing failed"),
        ({}, {"filesize": 0}, "empty file"),
        ({}, {"n": 1}, "rows, the source has"),
    ],
)
def test_quick_check_failures(
    tmp_path: Path, change: dict[str, object], chunk: dict[str, object], message: str
) -> None:
    source = source_folder(tmp_path / "pre", [300, 500])
    copy = recompress(source, tmp_path / "out", "zstd", 0.01).folder
    _edit_metadata(copy, change, chunk)
    with pytest.raises(VerifyFailed, match=message):
        quick_check(source, copy)


def test_deep_compare_finds_one_changed_value(tmp_path: Path) -> None:
    """A single flipped value in a rewritten chunk is found and named."""
    source = source_folder(tmp_path / "pre", [300, 500])
    other = source_folder(tmp_path / "other", [300, 500])  # same seed: identical rows
    deep_compare(source, other)
    third = source_folder(tmp_path / "third", [300, 500], seed=1)
    with pytest.raises(VerifyFailed, match=r"differ in \['time'"):
        deep_compare(source, third)
    shorter = source_folder(tmp_path / "short", [300])
    with pytest.raises(VerifyFailed, match="different numbers of rows"):
        deep_compare(source, shorter)
