"""Fix 6 of `collapsetune._ray.fixes`: what Ray copies into a local results folder is written
whole or not at all, so a full disk never leaves a truncated experiment snapshot (issue 22
item 2). Ray's own copy function, patched, on a real filesystem the test fills."""

from __future__ import annotations

import os
import subprocess

import pyarrow.fs
import pytest
import ray.train._internal.storage as ray_storage

from collapsetune._ray import fixes as _ray_fixes


def test_copies_into_a_local_folder_are_whole_and_leave_no_partial_files(tmp_path):
    _ray_fixes.apply()
    source = tmp_path / "staging"
    (source / "trial").mkdir(parents=True)
    (source / "experiment_state.json").write_text('{"a": 1}')
    (source / "trial" / "result.json").write_text("{}\n")
    (source / "empty").mkdir()
    target = tmp_path / "results"
    ray_storage._pyarrow_fs_copy_files(str(source), str(target), destination_filesystem=pyarrow.fs.LocalFileSystem())
    assert (target / "experiment_state.json").read_text() == '{"a": 1}'
    assert (target / "trial" / "result.json").read_text() == "{}\n" and (target / "empty").is_dir()
    assert not [p for p in target.rglob("*") if p.name.endswith(".partial")]


def test_a_copy_onto_a_full_disk_keeps_the_old_file_whole(tmp_path):
    _ray_fixes.apply()
    full = tmp_path / "full"
    full.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(full)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here to fill (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        old = b'{"snapshot": "whole"}'
        (full / "experiment_state.json").write_bytes(old)
        with open(full / "filler", "wb") as filler:  # leaves less room than the new snapshot needs
            filler.write(b"\0" * (os.statvfs(full).f_bavail * os.statvfs(full).f_frsize - 8192))
        staging = tmp_path / "staging"
        staging.mkdir()
        (staging / "experiment_state.json").write_bytes(b"x" * 200_000)
        with pytest.raises(OSError) as raised:
            ray_storage._pyarrow_fs_copy_files(str(staging), str(full),
                                               destination_filesystem=pyarrow.fs.LocalFileSystem())
        assert raised.value.errno == 28
        assert (full / "experiment_state.json").read_bytes() == old
        assert sorted(p.name for p in full.iterdir()) == ["experiment_state.json", "filler"]
    finally:
        subprocess.run(["umount", str(full)], check=True)
