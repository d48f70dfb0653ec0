import numpy as np
import pytest
from PIL import Image

from medvision.data import ImageLoadError, read_image
from medvision.data.decode import map_images
from tests.conftest import write_image


def test_modes_become_rgb_uint8(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb).convert("L").save(tmp_path / "gray.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    Image.fromarray(rgb).convert("1").save(tmp_path / "bw.png")
    for name in ("rgb", "gray", "rgba", "palette", "bw"):
        out = read_image(tmp_path / f"{name}.png")
        assert out.shape == (10, 12, 3) and out.dtype == np.uint8, name
    assert np.array_equal(read_image(tmp_path / "rgba.png"), rgb)
    gray = read_image(tmp_path / "gray.png")
    assert np.array_equal(gray[..., 0], gray[..., 2])


def test_16bit_is_stretched_to_8bit(tmp_path):
    arr = np.linspace(1000, 4095, 64 * 64).reshape(64, 64).astype(np.uint16)  # 12-bit data
    Image.fromarray(arr).save(tmp_path / "ct.png")
    assert Image.open(tmp_path / "ct.png").mode.startswith("I")
    out = read_image(tmp_path / "ct.png")
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255


def test_exif_orientation_is_honoured(tmp_path):
    img = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert read_image(tmp_path / "rot.jpg").shape == (40, 20, 3)


def test_wrong_extension_still_decodes(tmp_path):
    write_image(tmp_path / "really_png.jpg", fmt="PNG")
    assert read_image(tmp_path / "really_png.jpg").shape == (24, 32, 3)


@pytest.mark.parametrize("kind, pattern", [
    ("empty", "is empty"), ("text", "not an image"), ("truncated", "truncated"), ("missing", "cannot read"),
])
def test_bad_files_name_the_file(tmp_path, kind, pattern):
    path = tmp_path / f"{kind}.jpg"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not an image at all")
    elif kind == "truncated":
        write_image(tmp_path / "full.jpg", size=(256, 256))
        data = (tmp_path / "full.jpg").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match=pattern) as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_decompression_bomb_guard_stays_on(tmp_path, monkeypatch):
    write_image(tmp_path / "big.png", size=(200, 200))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageLoadError, match="too large"):
        read_image(tmp_path / "big.png")


def test_map_images_skip_lists_every_bad_file(tmp_path):
    good = [write_image(tmp_path / f"{i}.png", seed=i) for i in range(3)]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    paths = [good[0], bad, good[1], good[2]]
    results, skipped = map_images(read_image, paths, on_error="skip")
    assert results[1] is None and all(r is not None for i, r in enumerate(results) if i != 1)
    assert [p for p, _ in skipped] == [bad]
    with pytest.raises(ImageLoadError, match="bad.png"):
        map_images(read_image, paths, on_error="raise")
