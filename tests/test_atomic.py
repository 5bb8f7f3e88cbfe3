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


def test_files_follow_the_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "shared.bin", b"x")
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "private.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "private.bin").stat().st_mode) == 0o600


def test_remove_stale_temporaries(tmp_path):
    from haco_grasp.atomic import remove_stale_temporaries

    target = tmp_path / "refined.pkl"
    (tmp_path / ".refined.pkl.abc123.tmp").write_bytes(b"half")
    (tmp_path / ".other.pkl.abc123.tmp").write_bytes(b"someone else's")
    assert [p.name for p in remove_stale_temporaries(target)] == [".refined.pkl.abc123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pkl.abc123.tmp"]
