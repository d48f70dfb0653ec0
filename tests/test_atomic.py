import json

import pytest

from medvision.atomic import atomic_path, write_json_atomic, write_text_atomic


def test_failed_write_keeps_the_previous_file_and_leaves_no_temp(tmp_path):
    target = write_text_atomic(tmp_path / "a" / "f.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and list(target.parent.iterdir()) == [target]
    write_json_atomic(target, {"x": 1})
    assert json.loads(target.read_text()) == {"x": 1}
