import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medvision import DISCLAIMER
from tests.deploy.test_webhook import Receiver

pytest.importorskip("streamlit", reason="the [app] extra is not installed")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = str(Path(__file__).resolve().parents[1] / "medvision" / "app.py")


def png(seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def run_app(monkeypatch, bundle, webhook: str = "", send_image: bool = False) -> AppTest:
    monkeypatch.setenv("MEDVISION_BUNDLE", str(bundle))
    monkeypatch.setenv("MEDVISION_WEBHOOK", webhook)
    monkeypatch.setenv("MEDVISION_WEBHOOK_SEND_IMAGE", "1" if send_image else "0")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [w.value for w in at.warning] + [e.value for e in at.error]
                     + [c.value for c in at.caption])


def test_app_shows_disclaimer_and_predictions(monkeypatch, tiny_bundle):
    at = run_app(monkeypatch, tiny_bundle)
    assert DISCLAIMER in texts(at)
    at.file_uploader[0].set_value([("a.png", png(0), "image/png"), ("b.png", png(1), "image/png"),
                                   ("broken.png", b"\x89PNG\r\n\x1a\n garbage", "image/png")])
    at.run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert shown.count("**Prediction: ") == 2 and "calibrated confidence" in shown
    assert [s.value for s in at.subheader] == ["a.png", "b.png", "broken.png"]
    assert "Cannot read this file" in shown and "broken.png" in shown
    assert len(at.get("vega_lite_chart")) == 2  # the top-k bar charts
    assert len(at.get("image")) == 4  # each upload and its Grad-CAM overlay


def test_app_without_bundle_says_how_to_start(monkeypatch, tmp_path):
    at = run_app(monkeypatch, "")
    assert "No bundle given" in texts(at)
    at = run_app(monkeypatch, tmp_path)
    assert "not a medvision bundle" in texts(at)


@pytest.mark.parametrize("send_image", [False, True])
def test_app_posts_each_prediction_to_the_webhook(monkeypatch, tiny_bundle, send_image):
    receiver = Receiver()
    receiver.release.clear()  # the webhook stalls: the page must still finish
    try:
        at = run_app(monkeypatch, tiny_bundle, receiver.url, send_image)
        at.file_uploader[0].set_value(("a.png", png(0), "image/png"))
        at.run()
        assert not at.exception and "Prediction sent to the webhook" in texts(at)
        assert not receiver.bodies  # the page finished while the webhook had not answered
        receiver.release.set()
        assert receiver.received.wait(10)
        body = receiver.bodies[0]
        assert body["prediction"]["source"] == "a.png" and body["prediction"]["disclaimer"] == DISCLAIMER
        assert body["model"]["architecture"] == "test_efficientnet"
        assert ("image_png_base64" in body) is send_image
    finally:
        receiver.close()
