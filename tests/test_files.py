"""Atomic writes: a reader sees the old file or the new one, never half of one."""
import pytest

from cluster_gnn.files import atomic_write


def test_replaces_the_file_only_when_the_write_finishes(tmp_path):
    path = tmp_path / "record.json"
    path.write_text("old")
    with atomic_write(path) as fh:
        fh.write("new, ")
        assert path.read_text() == "old"  # a reader mid-write still sees the whole old file
        fh.write("complete")
    assert path.read_text() == "new, complete"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_an_error_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"old model")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_write(path, "wb", fsync=True) as fh:
            fh.write(b"half a mo")
            raise RuntimeError("killed")
    assert path.read_bytes() == b"old model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_a_new_file_appears_whole_and_text_is_utf8(tmp_path):
    path = tmp_path / "new.xyz"
    with atomic_write(path, fsync=True) as fh:
        fh.write("Mo₅S₄⁻\n")
    assert path.read_bytes().decode("utf-8") == "Mo₅S₄⁻\n"


def test_only_write_modes(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "a"):
            pass
