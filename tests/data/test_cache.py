import numpy as np
import pytest

from medvision.data import ImageLoadError, build_tensor_cache, load_image_folder, load_medmnist
from medvision.data.cache import resize_image
from tests.conftest import write_image


def test_array_cache_builds_once_and_is_memory_mapped(shared_data, tmp_path):
    table = load_medmnist("breastmnist", root=shared_data)
    cache = build_tensor_cache(table, 32, cache_dir=tmp_path)
    assert cache.array.shape == (780, 3, 32, 32) and cache.array.dtype == np.uint8
    assert isinstance(cache.array, np.memmap)
    mtime = cache.path.stat().st_mtime_ns
    again = build_tensor_cache(table, 32, cache_dir=tmp_path)
    assert again.path == cache.path and again.path.stat().st_mtime_ns == mtime
    assert build_tensor_cache(table, 28, cache_dir=tmp_path).path != cache.path
    native = build_tensor_cache(table, 28, cache_dir=tmp_path)
    assert np.array_equal(native.array[5, 0], table.images[5])  # 28 px: bytes unchanged
    images, labels = native.split("test")
    assert len(images) == 156 and labels.tolist() == table.subset("test").labels.tolist()


def test_file_cache_matches_decoded_pixels(shared_data, tmp_path):
    table = load_image_folder(shared_data / "chest_xray_224")
    cache = build_tensor_cache(table, 64, cache_dir=tmp_path, progress=False)
    assert cache.array.shape == (400, 3, 64, 64)
    from medvision.data import read_image
    first = resize_image(read_image(table.absolute_paths()[0]), 64)
    assert np.array_equal(cache.array[0], first.transpose(2, 0, 1))


def test_skip_lists_bad_files_and_raise_names_first(tmp_path):
    for cls in ("a", "b"):
        for i in range(3):
            write_image(tmp_path / "data" / cls / f"{i}.png", seed=i)
    (tmp_path / "data" / "a" / "broken.png").write_bytes(b"")
    (tmp_path / "data" / "b" / "text.png").write_text("hello")
    table = load_image_folder(tmp_path / "data")
    with pytest.raises(ImageLoadError, match="broken.png"):
        build_tensor_cache(table, 16, cache_dir=tmp_path / "c", progress=False)
    cache = build_tensor_cache(table, 16, cache_dir=tmp_path / "c", on_error="skip", progress=False)
    assert len(cache) == 6 and len(cache.table) == 6
    assert sorted(s for s, _ in cache.skipped) == ["a/broken.png", "b/text.png"]
    assert "empty" in dict(cache.skipped)["a/broken.png"]


def test_cache_key_changes_when_a_file_changes(tmp_path):
    for cls in ("a", "b"):
        write_image(tmp_path / "d" / cls / "0.png", seed=1)
    table = load_image_folder(tmp_path / "d")
    first = build_tensor_cache(table, 8, cache_dir=tmp_path / "c", progress=False)
    write_image(tmp_path / "d" / "a" / "0.png", seed=2, size=(40, 40))
    second = build_tensor_cache(load_image_folder(tmp_path / "d"), 8, cache_dir=tmp_path / "c",
                                progress=False)
    assert first.path != second.path


@pytest.mark.parametrize("mode", ["squash", "crop", "pad"])
def test_resize_modes(mode):
    img = np.full((20, 40, 3), 200, np.uint8)
    out = resize_image(img, 10, mode)
    assert out.shape == (10, 10, 3)
    if mode == "pad":
        assert out[0, 5, 0] == 0 and out[5, 5, 0] == 200
    else:
        assert (out == 200).all()
