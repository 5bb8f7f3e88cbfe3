import pytest

from haco_grasp.atomic import atomic_open, atomic_write_bytes


def test_write_creates_parents_and_replaces(tmp_path):
    target = tmp_path / "a" / "b" / "file.bin"
    assert atomic_write_bytes(target, b"first") == target
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"finished work")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as stream:
            stream.write(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"finished work"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]
