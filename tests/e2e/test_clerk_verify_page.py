"""The certificate-check pages in a real browser (Debian chromium, headless, via chromedriver).

The real service as the demo runs it: `python -m api serve --demo` in a scratch directory (SQLite,
the simulators in process, the demo register, a free port). Then, through HTTP as a citizen's app
would: the demo citizen with no housing (13900000003) signs in by SMS code and issues a
no-housing certificate (`POST /api/v1/me/certificates`, `qr_text` in the answer). In the browser:

* `/clerk/verify`: the demo clerk signs in, pastes the scanned text, verifies: `valid`; the same
  text with one character changed: `forged`. The token stays out of web storage and cookies.
  Then with Chrome's fake camera showing the certificate's QR code: jsQR reads it, `valid`.
* `/v#<token>`, the URL the certificate's QR code holds: `valid`; `/v` alone says how to use it.
* `/docs`: Swagger UI renders under the Content-Security-Policy.

On every page: no console error (a CSP violation is one) and no request to another origin (from
Chrome's performance log). Every wait is bounded. The tools are required, never skipped
(tests/support/tools.py); `.ci/run` and `python3 dev.py test` install them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.support.server import free_port
from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0
HTTP_TIMEOUT_S = 10.0
BROWSER_WAIT_S = 20.0
PAGE_LOAD_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

# The demo's fixed identities (docs/demo.md).
NO_HOUSING_PHONE = "13900000003"  # 李思远: no property now or ever
CLERK = ("clerk.pudong", "Demo-Pudong-2026!")

pytestmark = [pytest.mark.slow]

T = TypeVar("T")


def eventually(what: str, probe: Callable[[], T | None], timeout_s: float, *, log: Path | None = None) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log else ""
            pytest.fail(f"{what}: not within {timeout_s:g}s\n{tail}")
        time.sleep(0.1)


# --- the service ---------------------------------------------------------------------------------


@dataclass
class Service:
    base_url: str
    sms_url: str
    log: Path


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    directory = tmp_path_factory.mktemp("clerk-page")
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ESTATE_", "TEST_")) and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
        PYTHONUNBUFFERED="1",
        DATABASE_URL=f"sqlite://{directory / 'estate.sqlite3'}",
        ESTATE_HOST="127.0.0.1",
        ESTATE_PORT=str(port),
        ESTATE_SIMULATOR_BASE_PORT="0",  # ephemeral: the demo's fixed 8810.. may be taken
        ESTATE_DEMO_PERSONS="50",
        ESTATE_DEMO_UNITS="60",
        ESTATE_LOG_JSON="false",
        ESTATE_LOG_LEVEL="WARNING",
    )
    log = directory / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api", "serve", "--demo"],
            cwd=directory,  # not the repo: a developer's .env and var/ stay out of it
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> str | None:
            assert process.poll() is None, f"the service exited:\n{log.read_text(errors='replace')}"
            banner = re.search(r"SMS inbox:\s*(\S+)/messages", log.read_text(errors="replace"))
            if banner is None:
                return None
            try:
                r = httpx.get(f"{base_url}/health/ready", timeout=2)
            except httpx.TransportError:
                return None
            return banner.group(1) if r.status_code == 200 else None

        sms_url = eventually("the demo service", ready, START_TIMEOUT_S, log=log)
        yield Service(base_url, sms_url, log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT_S)


def _citizen_token(service: Service, http: httpx.Client, phone: str) -> str:
    def codes() -> list[str]:
        inbox = http.get(f"{service.sms_url}/messages", params={"phone": phone}).json()
        return [str(m["params"]["code"]) for m in inbox if m["template"] == "login_code"]

    seen = len(codes())
    r = http.post(f"{service.base_url}/api/v1/auth/sms-codes", json={"phone": phone})
    assert r.status_code == 202, r.text
    code = eventually("the sign-in SMS", lambda: codes()[0] if len(codes()) > seen else None, 10)
    r = http.post(f"{service.base_url}/api/v1/auth/tokens", json={"phone": phone, "code": code})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


@pytest.fixture(scope="module")
def qr_text(service: Service) -> str:
    """The scanned text of a fresh no-housing certificate of the demo citizen who owns nothing."""
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as http:
        token = _citizen_token(service, http, NO_HOUSING_PHONE)
        r = http.post(
            f"{service.base_url}/api/v1/me/certificates",
            json={"type": "no-housing", "purpose": "talent"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert r.status_code in (200, 201), (
        f"POST /api/v1/me/certificates answered {r.status_code}: {r.text[:300]}\n"
        "(the contract: a JSON body with `qr_text`, the text the certificate's QR code holds)"
    )
    text = r.json().get("qr_text")
    assert isinstance(text, str) and text, f"no qr_text in {r.text[:300]}"
    return text


def flip_one_character(text: str) -> str:
    """The text with one character changed, near the end: inside the signature of a token that
    ends with one, and a whole base64 character there (the last one may carry padding bits only)."""
    i = len(text) - 10
    assert i > 0, f"too short to tamper with: {text!r}"
    return text[:i] + ("x" if text[i] != "x" else "y") + text[i + 1 :]


# --- the browser ---------------------------------------------------------------------------------


@contextmanager
def chrome(*arguments: str) -> Iterator[Any]:
    """Debian's chromium, headless, at a phone's width, logging the console and the network."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    binary = require_tool("chromium", package="chromium")
    driver_path = require_tool("chromedriver", package="chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    options.add_argument("--headless=new")
    options.add_argument("--window-size=390,844")  # a phone
    options.add_argument("--disable-dev-shm-usage")
    options.add_argument("--no-first-run")
    options.add_argument("--disable-background-networking")  # no calls home beside the test's
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to sandbox as root
    for argument in arguments:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=DriverService(driver_path), options=options)
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
        driver.set_script_timeout(BROWSER_WAIT_S)
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chrome() as driver:
        yield driver


def qr_video(text: str, path: Path, width: int = 640, height: int = 480) -> Path:
    """One still frame of `text` as a QR code, in the raw Y4M format Chrome's fake camera plays."""
    import qrcode

    code = qrcode.QRCode(border=4, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(text)
    code.make(fit=True)
    modules = code.get_matrix()
    box = min(width, height) // len(modules)
    assert box >= 3, f"the QR code of {len(text)} characters does not fit a {width}x{height} frame"
    left, top = (width - box * len(modules)) // 2, (height - box * len(modules)) // 2
    luma = bytearray(b"\xff" * (width * height))
    for row, line in enumerate(modules):
        for col, dark in enumerate(line):
            if dark:
                for y in range(top + row * box, top + (row + 1) * box):
                    start = y * width + left + col * box
                    luma[start : start + box] = b"\x00" * box
    chroma = b"\x80" * (width // 2 * height // 2)  # grey: no colour in either plane
    header = f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + b"FRAME\n" + bytes(luma) + chroma + chroma)
    return path


class Page:
    """Waits, and the checks every page gets: console errors and requests to other origins."""

    def __init__(self, driver: Any, base_url: str) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.base_url = base_url
        self.wait = WebDriverWait(driver, BROWSER_WAIT_S)
        driver.get_log("browser")  # drop what earlier tests left
        driver.get_log("performance")

    def open(self, path: str) -> None:
        self.driver.get(path if path.startswith("http") else f"{self.base_url}{path}")
        self.wait.until(lambda d: d.execute_script("return document.readyState") == "complete")

    def element(self, element_id: str, *, visible: bool = True) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        locator = (By.ID, element_id)
        condition = ec.visibility_of_element_located if visible else ec.presence_of_element_located
        return self.wait.until(condition(locator), f"#{element_id} did not appear")

    def verdict(self) -> str:
        return str(
            self.wait.until(
                lambda d: d.execute_script(
                    "const r = document.getElementById('result');return r && !r.hidden && r.dataset.verdict;"
                ),
                "no verdict shown",
            )
        )

    def assert_clean(self) -> None:
        """No console error, and every request the page made went to our origin."""
        errors = [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert not errors, "console errors:\n" + "\n".join(e["message"] for e in errors)
        requests = [
            message["params"]["request"]["url"]
            for entry in self.driver.get_log("performance")
            if (message := json.loads(entry["message"])["message"]).get("method")
            == "Network.requestWillBeSent"
        ]
        assert requests, "no requests in the performance log: is network logging on?"
        foreign = [u for u in requests if not u.startswith((f"{self.base_url}/", "data:", "blob:"))]
        assert not foreign, f"requests to other origins: {foreign}"


@pytest.fixture
def page(browser: Any, service: Service) -> Page:
    return Page(browser, service.base_url)


# --- the tests -----------------------------------------------------------------------------------


def _verify(page: Page, text: str) -> str:
    box = page.element("qr-text")
    box.clear()
    # Pasted: the text arrives in one piece, with the input event a paste fires.
    page.driver.execute_script(
        "arguments[0].value = arguments[1];arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
        box,
        text,
    )
    page.element("verify-button").click()
    return page.verdict()


def test_clerk_signs_in_and_verifies_a_scanned_certificate(page: Page, qr_text: str) -> None:
    page.open("/clerk/verify")
    page.element("username").send_keys(CLERK[0])
    page.element("password").send_keys(CLERK[1])
    page.element("sign-in-button").click()
    page.element("check")
    assert not page.element("sign-in", visible=False).is_displayed()

    assert _verify(page, qr_text) == "valid"
    result = page.element("result").text
    assert "有效" in result and "Valid" in result
    for label in ("证明编号", "持有人", "用途", "有效期至", "无房证明"):
        assert label in result, f"{label} not shown:\n{result}"
    assert "李" in result, f"the holder (masked) is not shown:\n{result}"

    assert _verify(page, flip_one_character(qr_text)) == "forged"
    assert "伪造" in page.element("result").text

    storage = page.driver.execute_script(
        "return [localStorage.length, sessionStorage.length, document.cookie]"
    )
    assert storage == [0, 0, ""], f"the page kept something outside its memory: {storage}"
    page.assert_clean()


def test_clerk_scans_the_certificate_with_the_camera(service: Service, qr_text: str, tmp_path: Path) -> None:
    """Chrome's fake camera shows the certificate's QR code; jsQR reads it from the video."""
    video = qr_video(qr_text, tmp_path / "qr.y4m")
    with chrome(
        "--use-fake-ui-for-media-stream",  # grants the camera without asking
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ) as driver:
        page = Page(driver, service.base_url)
        page.open("/clerk/verify")
        page.element("username").send_keys(CLERK[0])
        page.element("password").send_keys(CLERK[1])
        page.element("sign-in-button").click()
        page.element("camera-button").click()
        assert page.verdict() == "valid"
        assert page.element("qr-text").get_attribute("value") == qr_text
        assert not page.element("camera", visible=False).is_displayed(), "the camera was left on"
        page.assert_clean()


def test_the_certificate_qr_url_opens_the_public_check(page: Page, qr_text: str) -> None:
    token = qr_text.split("#", 1)[1] if "#" in qr_text else qr_text
    page.open(f"/v#{token}")
    assert page.verdict() == "valid"
    assert "有效" in page.element("result").text
    page.assert_clean()


def test_the_public_page_without_a_token_says_how_to_use_it(page: Page) -> None:
    page.open("/v")
    assert "扫描" in page.element("how-to").text
    assert not page.element("result", visible=False).is_displayed()
    page.assert_clean()


def test_swagger_ui_renders_from_our_origin(page: Page) -> None:
    page.open("/docs")
    from selenium.webdriver.common.by import By

    title = page.wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"), "Swagger UI did not render"
    )
    assert "不动产一网通办" in title[0].text
    page.assert_clean()
