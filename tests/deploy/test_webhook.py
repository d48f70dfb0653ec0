import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from medvision.deploy.webhook import WebhookSender, check_url, payload, post_json


class Receiver:
    """A local HTTP server on 127.0.0.1 that records JSON posts (and can be told to stall)."""

    def __init__(self, status: int = 200):
        self.bodies: list[dict] = []
        self.release = threading.Event()
        self.release.set()
        self.received = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.release.wait(10)
                receiver.bodies.append(body)
                receiver.received.set()
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_post_json_delivers(receiver):
    result = post_json(receiver.url, {"a": 1})
    assert result.status == 200 and receiver.bodies == [{"a": 1}]


def test_sender_does_not_block_and_omits_the_image_by_default(receiver):
    receiver.release.clear()  # the server stalls until we let it answer
    sender = WebhookSender(receiver.url)
    future = sender.submit({"label": "normal"}, {"architecture": "x"}, np.zeros((4, 4, 3), np.uint8))
    assert not future.done()  # submit returned while the post is still waiting on the server
    receiver.release.set()
    assert future.result(timeout=10).status == 200
    sender.close()
    body = receiver.bodies[0]
    assert body["prediction"] == {"label": "normal"} and body["event"] == "medvision.prediction"
    assert "image_png_base64" not in body and sender.results[0].status == 200


def test_sender_sends_the_image_when_asked(receiver):
    sender = WebhookSender(receiver.url, send_image=True)
    sender.submit({"label": "x"}, {}, np.zeros((4, 4, 3), np.uint8)).result(timeout=10)
    sender.close()
    assert receiver.bodies[0]["image_png_base64"].startswith("iVBOR")  # PNG magic in base64


def test_timeout_and_unreachable_are_reported_not_raised(receiver):
    receiver.release.clear()
    slow = post_json(receiver.url, {"a": 1}, timeout=0.2)
    assert slow.status is None and "timed out" in slow.error.lower()
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = post_json(f"http://127.0.0.1:{port}/", {"a": 1}, timeout=2)
    assert refused.status is None and refused.error


def test_only_http_urls():
    assert check_url("https://example.org/x")
    for bad in ("file:///etc/passwd", "ftp://host/x", "localhost:8000"):
        with pytest.raises(ValueError, match="http"):
            check_url(bad)


def test_payload_is_json_serialisable():
    body = payload({"confidence": np.float32(0.5).item()}, {"classes": ["a"]})
    assert json.loads(json.dumps(body))["model"] == {"classes": ["a"]}
