"""Drive the ``tsm serve`` page in headless Chromium (tests, the screenshot docs/serve.png, the
page-to-label benchmark), and write the fake-camera clip Chromium reads.

Needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``) and ``selenium``. Selenium is pointed at the installed driver,
so Selenium Manager never tries to download one. Chromium runs as root here, with the
network closed: hence ``--no-sandbox`` and the flags that stop its background requests.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # selenium: the test extra's
    from selenium.webdriver import Chrome

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--window-size=1100,760",
)


def chromium_missing() -> str | None:
    """Why the browser cannot run here (None when it can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            return f"{path} not found (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'temporal-shift[test]')"
    return None


def write_y4m(path: str | Path, frames: np.ndarray, *, fps: int) -> Path:
    """uint8 RGB frames (T, H, W, 3) (even H, W) -> a YUV4MPEG2 file (4:2:0), what Chromium's
    fake camera plays (``--use-file-for-fake-video-capture``, looped)."""
    import av

    path = Path(path)
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"expected RGB frames (T, H, W, 3) with even H and W, got {frames.shape}")
    container = av.open(str(path), "w", format="yuv4mpegpipe")
    try:
        stream = container.add_stream("wrapped_avframe", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
    return path


class Browser:
    """``with Browser(fake_camera=clip.y4m) as b: b.driver.get(url)``: headless Chromium with a
    fresh profile (removed on exit), its fake camera playing ``fake_camera`` if given."""

    def __init__(self, *, fake_camera: str | Path | None = None, extra_flags: Sequence[str] = ()) -> None:
        reason = chromium_missing()
        if reason is not None:
            raise RuntimeError(reason)
        self.fake_camera = Path(fake_camera).resolve() if fake_camera is not None else None
        self.extra_flags = tuple(extra_flags)
        self.profile: str | None = None
        self.driver: Chrome | None = None  # started on entering

    def __enter__(self) -> Browser:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="tsm-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS + self.extra_flags:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        if self.fake_camera is not None:
            options.add_argument("--use-fake-ui-for-media-stream")
            options.add_argument("--use-fake-device-for-media-stream")
            options.add_argument(f"--use-file-for-fake-video-capture={self.fake_camera}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(30)
        return self

    def console(self) -> list[str]:
        """The page's console messages so far (for failure reports)."""
        if self.driver is None:
            return []
        try:
            return [entry["message"] for entry in self.driver.get_log("browser")]
        except Exception:
            return []

    def __exit__(self, *exc) -> None:
        try:
            if self.driver is not None:
                self.driver.quit()
        finally:
            if self.profile is not None:
                shutil.rmtree(self.profile, ignore_errors=True)


PAGE_STATE_JS = """
const s = window.tsm || {};
const bars = [...document.querySelectorAll('#bars .bar')]
  .map((b) => ({label: b.dataset.label, score: Number(b.dataset.score)}));
return {frames: s.frames || 0, skipped: s.skipped || 0, resets: s.resets || {}, last: s.last || null,
        fps: s.fps || 0, closed: !!s.closed, idle: !!s.idle, connections: s.connections || 0,
        status: document.getElementById('status').textContent,
        label: document.getElementById('label').dataset.label, bars: bars,
        rate: document.getElementById('rate').textContent, model_ms: document.getElementById('model-ms').textContent,
        done: (s.done || []).slice(), rtts: (s.rtts || []).slice(), models: (s.models || []).slice()};
"""


def page_state(driver) -> dict:
    """What the page shows: label, bars (label, score), counters, the latest result."""
    return driver.execute_script(PAGE_STATE_JS)


def wait_for(driver, predicate, *, timeout: float, what: str, poll: float = 0.25) -> dict:
    """Poll `page_state` until ``predicate(state)``; a timeout names ``what`` and the last state."""
    import time

    deadline = time.monotonic() + timeout
    state = page_state(driver)
    while not predicate(state):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"page: {what} not seen within {timeout:.0f} s; last state: "
                f"{ {k: state[k] for k in ('frames', 'label', 'bars', 'status', 'resets')} }"
            )
        time.sleep(poll)
        state = page_state(driver)
    return state


def open_page(driver, url: str, *, timeout: float = 30) -> dict:
    """Load the page and wait for the server's hello."""
    driver.get(url)
    return wait_for(
        driver, lambda s: s["status"].startswith("connected") or s["closed"], timeout=timeout, what="the server's hello"
    )


def start_camera(driver) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "camera").click()


def choose_file(driver, path: str | Path) -> None:
    """Pick a local video file in the page's file input (what a person's file dialog does)."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "file").send_keys(str(Path(path).resolve()))
