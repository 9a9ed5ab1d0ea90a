"""``focal-pl data synth``: stand-ins of the training sets that their own readers read back, seeded,
written whole or not at all."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from focal_pl.cli import main
from focal_pl.cli.data import READERS
from focal_pl.data import synthetic_sets
from focal_pl.data.synthetic_sets import MARKER, PROFILES, read_path, write_set


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MARKER}


@pytest.mark.parametrize("name", list(PROFILES))
def test_each_set_is_read_back_by_its_reader_with_a_mask_per_image(tmp_path, name):
    out = tmp_path / name
    record = write_set(name, out, 4, size=64)
    source = READERS[PROFILES[name].reader](read_path(name, out))
    assert len(source) == 4
    for index in range(4):
        image, mask, meta = source[index]
        assert mask.shape == image.shape[:2] and mask.any() and not meta["authentic"], meta["name"]
        if name == "folder":
            assert image.shape == (64, 64, 3)
    assert json.loads((out / MARKER).read_text()) == record
    assert record["items"] == sum(record["formats"].values()) == 4 and record["synthetic"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_ones(tmp_path):
    first, again, other = (write_set("sp_coco", tmp_path / f"s{i}", 3, seed=s) and digests(tmp_path / f"s{i}")
                           for i, s in enumerate((0, 0, 1)))
    assert first == again and first.keys() == other.keys()
    assert all(first[k] != other[k] for k in first if k.startswith("images/"))


def test_a_non_empty_folder_is_refused_and_left_as_it_was(tmp_path):
    out = tmp_path / "set"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(ValueError, match=f"{out} is not an empty folder"):
        write_set("casia2", out, 2)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_a_failed_write_leaves_no_folder_and_a_killed_runs_partial_is_removed(tmp_path, monkeypatch):
    stale = tmp_path / ".set.99999999.tmp"  # a killed run's: no such process
    stale.mkdir()
    made = []

    def breaks(task):
        if len(made) == 2:
            raise OSError("No space left on device")
        made.append(task)
        return real(task)

    real = synthetic_sets._one
    monkeypatch.setattr(synthetic_sets, "_one", breaks)
    with pytest.raises(OSError, match="No space"):
        write_set("imd2020", tmp_path / "set", 5)
    assert list(tmp_path.iterdir()) == [] and len(made) == 2


def test_a_folder_filled_by_another_process_meanwhile_is_kept_and_this_set_dropped(tmp_path, monkeypatch):
    out = tmp_path / "set"
    real = synthetic_sets._one

    def other_writer_too(task):
        out.mkdir(exist_ok=True)
        (out / "theirs.txt").write_text("theirs")
        return real(task)

    monkeypatch.setattr(synthetic_sets, "_one", other_writer_too)
    with pytest.raises(ValueError, match="written by another process meanwhile"):
        write_set("sp_coco", out, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["set"] and [p.name for p in out.iterdir()] == ["theirs.txt"]


def test_the_command_writes_a_set_that_data_check_passes(tmp_path, capsys):
    out = tmp_path / "casia"
    assert main(["data", "synth", "casia2", str(out), "--items", "3"]) == 0
    said = capsys.readouterr().out
    assert f"wrote 3 synthetic casia2 items to {out}" in said and f"focal-pl data check casia {out}" in said
    assert main(["data", "check", "casia", str(out)]) == 0
    assert "3 items: 3 forged, 0 authentic" in capsys.readouterr().out
    assert main(["data", "synth", "casia2", str(out)]) == 2
    assert "is not an empty folder" in capsys.readouterr().err
