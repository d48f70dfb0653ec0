import json

import pytest

from medvision.core.atomic import atomic_path, write_json_atomic, write_text_atomic


def test_failed_write_keeps_the_previous_file_and_leaves_no_temp(tmp_path):
    target = write_text_atomic(tmp_path / "a" / "f.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and list(target.parent.iterdir()) == [target]
    write_json_atomic(target, {"x": 1})
    assert json.loads(target.read_text()) == {"x": 1}


def test_a_refused_write_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    import errno
    import os

    from medvision.core.errors import FileWriteError, UserError

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(FileWriteError, match=f"cannot write {blocker}/out.csv .*nothing was written"):
        write_text_atomic(blocker / "out.csv", "a,b")
    target = write_text_atomic(tmp_path / "f.txt", "old")

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(UserError, match=r"No space left on device.*the previous file is kept"):
        write_json_atomic(target, {"x": 1})
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.txt", "not-a-folder"]
    bug = OSError(errno.EBADF, "Bad file descriptor")  # not the user's doing: stays a plain OSError

    def broken(src, dst):
        raise bug

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError) as caught:
        write_text_atomic(target, "new")
    assert caught.value is bug and not isinstance(caught.value, UserError)
