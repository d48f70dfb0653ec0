from pathlib import Path

from medvision.data.paths import resolve_data_root, search_roots, tensor_cache_dir


def test_explicit_then_env_then_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDVISION_DATA", str(tmp_path / "env"))
    assert resolve_data_root(tmp_path / "x") == tmp_path / "x"
    assert resolve_data_root("") == tmp_path / "env"
    monkeypatch.delenv("MEDVISION_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_root() == tmp_path / "xdg" / "medvision"
    assert search_roots()[0] == tmp_path / "xdg" / "medvision"
    assert tensor_cache_dir(tmp_path / "c") == Path(tmp_path / "c")
