"""Command-line tools the tests use (a PDF rasteriser, a QR reader, a browser): found, or the test
fails saying which Debian package provides the tool.

Never a skip: a skipped check reads as green in CI while checking nothing. `.ci/run` and
`python3 dev.py test` install these packages when they can (root with apt-get), so a failure here
means the machine could not, and the message says what to install.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

# Every tool a test may require, and the Debian package that provides it. `.ci/run` and dev.py
# install the same packages (keep the three lists together when adding one).
TOOL_PACKAGES: dict[str, str] = {
    "pdftoppm": "poppler-utils",
    "zbarimg": "zbar-tools",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
}


def require_tool(name: str, *, package: str | None = None) -> str:
    """The tool's absolute path; fails the calling test (never skips) when it is not installed."""
    package = package or TOOL_PACKAGES.get(name, name)
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not installed; it comes with the Debian package {package}: "
            f"apt-get install --no-install-recommends {package} "
            "(`.ci/run` and `python3 dev.py test` install it when run as root)",
            pytrace=False,
        )
    return path


def qr_texts_in_pdf(pdf: bytes, workdir: Path) -> list[str]:
    """Rasterise page 1 with poppler's pdftoppm (150 dpi) and read every QR code with ZXing, as a
    phone camera would read the printed page."""
    try:
        import zxingcpp
    except ImportError:
        pytest.fail(
            "the zxingcpp module is missing: `python3 dev.py setup` installs zxing-cpp", pytrace=False
        )
    from PIL import Image

    source = workdir / "page.pdf"
    source.write_bytes(pdf)
    subprocess.run(
        [require_tool("pdftoppm"), "-r", "150", "-png", "-singlefile", str(source), str(workdir / "page")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with Image.open(workdir / "page.png") as image:
        codes = zxingcpp.read_barcodes(image)
    return [c.text for c in codes if c.format == zxingcpp.BarcodeFormat.QRCode]
