"""Send each prediction as JSON to a webhook URL, in the background, with a timeout.

The sender never blocks the caller (the Streamlit page): posts run in a small thread pool and their outcome
is kept in :attr:`WebhookSender.results`. The image is sent only when asked (``send_image=True``), as a
base64 PNG.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np
from PIL import Image

from medvision.core.errors import ConfigError


@dataclass(frozen=True)
class WebhookResult:
    """The outcome of one post: HTTP status (``None`` if it failed) and the error text."""

    url: str
    status: int | None
    error: str = ""


def check_url(url: str) -> str:
    """Accept only http(s) URLs with a host (no ``file:`` or other schemes)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"webhook URL must be http(s)://host/..., not {url!r}")
    return url


def payload(prediction: dict, model: dict, image: np.ndarray | None = None) -> dict:
    """The JSON sent for one prediction; ``image`` (RGB uint8) is embedded only when given."""
    body = {"event": "medvision.prediction", "sent": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "model": model, "prediction": prediction}
    if image is not None:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        body["image_png_base64"] = base64.b64encode(buf.getvalue()).decode("ascii")
    return body


def post_json(url: str, body: dict, timeout: float = 5.0) -> WebhookResult:
    """POST ``body`` as JSON; never raises (the outcome is in the result)."""
    request = urllib.request.Request(url, data=json.dumps(body, default=float).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "medvision"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked)
            return WebhookResult(url, response.status)
    except urllib.error.HTTPError as exc:
        return WebhookResult(url, exc.code, str(exc))
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        return WebhookResult(url, None, f"{type(exc).__name__}: {exc}")


class WebhookSender:
    """Post predictions in background threads.

    Args:
        url: The http(s) endpoint.
        timeout: Seconds before a post is abandoned.
        send_image: Include the image in the payload.
    """

    def __init__(self, url: str, timeout: float = 5.0, send_image: bool = False, workers: int = 2):
        self.url = check_url(url)
        self.timeout = timeout
        self.send_image = send_image
        self.results: list[WebhookResult] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medvision-webhook")

    def submit(self, prediction: dict, model: dict, image: np.ndarray | None = None) -> Future:
        """Queue one post and return at once."""
        body = payload(prediction, model, image if self.send_image else None)
        future = self._pool.submit(post_json, self.url, body, self.timeout)
        future.add_done_callback(self._record)
        return future

    def _record(self, future: Future) -> None:
        with self._lock:
            self.results.append(future.result())

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)
