"""QR codes for certificates: the matrix from `qrcode`, drawn as rectangles, never as images.

Error correction M (15 %): a printed certificate gets folded and stamped on. The PDF gets one
filled rectangle per horizontal run of dark modules, in module units under one transformation
matrix, so each is a short `x y w 1 re` of integers: sharp at any zoom, a few KB, and far faster
than reportlab's QR widget or one `canvas.rect` per run. The phone's 亮证 view gets the same runs
as one inline SVG path (no external assets, no script).

Speed (the issue budget is 10 ms of CPU for sign + QR + PDF; `qrcode` is pure Python):
- One byte-mode segment (`optimize=0`): a token has no long digit or upper-case runs worth a
  separate segment, and the chunking regex costs time.
- The version is the smallest whose capacity (qrcode's own `BIT_LIMIT_TABLE`) holds the bits,
  computed directly, instead of `best_fit`, which encodes the data bit by bit once more.
- A fixed mask pattern. The standard has the encoder score all eight masks and keep the best
  (qrcode's `best_mask_pattern`: eight full builds, ~20 ms at version 14); decoders read any
  mask, and the score only avoids patterns that look like finder patterns by accident. The
  integration test decodes the rasterised PDF with ZXing, so a mask that does not read fails it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import qrcode
import qrcode.constants
import qrcode.util
from reportlab.pdfgen.canvas import Canvas

QUIET_ZONE = 4  # modules of light margin the QR standard asks for (ISO/IEC 18004 §6.3.8)
ERROR_CORRECTION = qrcode.constants.ERROR_CORRECT_M
MASK_PATTERN = 0
Matrix = list[list[bool]]
_DARK_RUN = re.compile(rb"\x01+")


def _version(n_bytes: int) -> int:
    """The smallest version holding one byte-mode segment of `n_bytes` at ERROR_CORRECTION."""
    limits = qrcode.util.BIT_LIMIT_TABLE[ERROR_CORRECTION]
    for version in range(1, 41):
        needed = 4 + qrcode.util.length_in_bits(qrcode.util.MODE_8BIT_BYTE, version) + 8 * n_bytes
        if needed <= limits[version]:
            return version
    raise ValueError(f"{n_bytes} bytes do not fit in a QR code at error correction M")


def qr_matrix(text: str) -> Matrix:
    """Dark modules as True, without the quiet zone; the smallest version that fits."""
    data = text.encode("utf-8")
    code = qrcode.QRCode(
        version=_version(len(data)), error_correction=ERROR_CORRECTION, border=0, mask_pattern=MASK_PATTERN
    )
    code.add_data(data, optimize=0)
    code.make(fit=False)
    return code.get_matrix()


def dark_runs(matrix: Matrix) -> Iterator[tuple[int, int, int]]:
    """(row, first column, length) for every horizontal run of dark modules."""
    for y, row in enumerate(matrix):
        for run in _DARK_RUN.finditer(bytes(row)):  # a regex over b"\x00\x01...": C speed
            yield y, run.start(), run.end() - run.start()


def draw_qr(canvas: Canvas, matrix: Matrix, x: float, y: float, size: float) -> None:
    """Draw the QR with its bottom-left corner (quiet zone included) at (x, y), `size` points wide."""
    n = len(matrix)
    module = size / (n + 2 * QUIET_ZONE)
    left, top = x + QUIET_ZONE * module, y + size - QUIET_ZONE * module
    canvas.saveState()
    canvas.setFillColorRGB(1, 1, 1)
    canvas.rect(x, y, size, size, stroke=0, fill=1)
    canvas.setFillColorRGB(0, 0, 0)
    # Module units, origin at the QR's top-left corner, y downwards: `column row length 1 re`.
    canvas.transform(module, 0, 0, -module, left, top)
    canvas.addLiteral(
        "\n".join(f"{column} {row} {length} 1 re" for row, column, length in dark_runs(matrix)) + "\nf"
    )
    canvas.restoreState()


def qr_svg(text: str) -> str:
    """Inline SVG of the QR (quiet zone included) that scales to its container."""
    matrix = qr_matrix(text)
    side = len(matrix) + 2 * QUIET_ZONE
    d = "".join(
        f"M{column + QUIET_ZONE} {row + QUIET_ZONE}h{length}v1h-{length}z"
        for row, column, length in dark_runs(matrix)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" '
        f'shape-rendering="crispEdges" role="img" aria-label="QR code">'
        f'<rect width="{side}" height="{side}" fill="#fff"/><path d="{d}" fill="#000"/></svg>'
    )
