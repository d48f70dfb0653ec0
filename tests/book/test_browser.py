"""The built book in a real headless browser (Chromium): pages load, figures exist, links resolve.

Runs when ``$MEDVISION_BOOK_HTML`` points at a built book (``make test`` sets it after building the smoke
book) and Chromium is installed (``.ci/run`` installs it from the Debian packages); skipped otherwise, with
the reason. Screenshots of the intro and one results page go to ``_build/screenshots/``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

from medvision import DISCLAIMER

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "_build" / "screenshots"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    pytest.skip(f"no headless browser installed (looked for {', '.join(BROWSERS)}); .ci/run installs chromium")


def _book() -> Path:
    html = os.environ.get("MEDVISION_BOOK_HTML", "")
    if not html:
        pytest.skip("MEDVISION_BOOK_HTML is not set; `make test` sets it after building the smoke book")
    path = Path(html)
    if not (path / "book" / "intro.html").is_file():
        pytest.skip(f"no built book at {path}")
    return path


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def site():
    html = _book()
    browser = _browser()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(html))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield html, browser, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _chromium(browser: str, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
             "--virtual-time-budget=5000", "--user-data-dir=" + str(REPO / "_build" / "chromium-profile")]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120)


def _render(browser: str, url: str) -> _Links:
    proc = _chromium(browser, "--dump-dom", url)
    assert proc.returncode == 0 and "<html" in proc.stdout, f"{url} did not load: {proc.stderr[-1000:]}"
    parsed = _Links()
    parsed.feed(proc.stdout)
    return parsed


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{url}: HTTP {exc.code}") from exc


def test_every_page_loads_with_its_figures_and_links(site):
    html, browser, base = site
    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                   if not p.relative_to(html).as_posix().startswith(("_", "genindex", "search")))
    assert "book/intro.html" in pages and any(p.startswith("book/generated/") for p in pages)
    checked_images, checked_links, problems = set(), set(), []
    for page in pages:
        url = urljoin(base, page)
        raw = (html / page).read_text(errors="replace")
        if 'http-equiv="Refresh"' in raw or "http-equiv='refresh'" in raw.lower():
            target = raw.split("url=")[1].split('"')[0]  # the root page only redirects to the intro
            _get(urljoin(url, target))
            continue
        dom = _render(browser, url)
        text = " ".join(dom.text)
        if "Traceback (most recent call last)" in text:
            problems.append(f"{page}: shows a Python traceback")
        for src in dom.images:
            target = urljoin(url, src)
            if urlparse(target).netloc != urlparse(base).netloc or target in checked_images:
                continue
            checked_images.add(target)
            if not _get(target):
                problems.append(f"{page}: image {src} is empty")
        for href in dom.links:
            target = urldefrag(urljoin(url, href)).url
            if urlparse(target).netloc != urlparse(base).netloc or target in checked_links:
                continue
            checked_links.add(target)
            try:
                _get(target)
            except AssertionError as exc:
                problems.append(f"{page}: broken link {href} ({exc})")
    assert not problems, "\n".join(problems)
    assert checked_images and checked_links


def test_the_intro_carries_the_disclaimer_and_screenshots_are_saved(site):
    html, browser, base = site
    intro = " ".join(_render(browser, urljoin(base, "book/intro.html")).text)
    assert "Not for diagnosis." in intro and "education and research" in intro
    results = sorted((html / "book" / "generated").glob("02_*.html"))[0].relative_to(html).as_posix()
    assert DISCLAIMER.split(".")[0] in " ".join(_render(browser, urljoin(base, results)).text)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, page in (("intro.png", "book/intro.html"), ("training_strategies.png", results)):
        out = SCREENSHOTS / name
        out.unlink(missing_ok=True)
        proc = _chromium(_browser(), f"--screenshot={out}", "--window-size=1280,1600", urljoin(base, page))
        assert out.is_file() and out.stat().st_size > 10_000, proc.stderr[-1000:]
