"""The no-housing certificate as a one-page A4 PDF: Chinese text in embedded subset fonts, a QR.

Every font is embedded as a subset (`certificates.fonts`): no reference to a font the reader's
viewer may lack, and no Type 1 base-14 font either (the canvas starts in our own font, so
reportlab never adds Helvetica). Text is drawn per font run, so a name with a character outside
the basic plane (张𠀀) renders in HanaMinB and comes back out of text extraction intact.
Times are shown in Asia/Shanghai.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from certificates.fonts import CertificateFonts, FontsMissing
from certificates.qr import draw_qr, qr_matrix

__all__ = ["CertificateFonts", "FontsMissing", "NoHousingDocument", "render_no_housing_pdf"]

SHANGHAI = ZoneInfo("Asia/Shanghai")
TITLE = "不动产登记信息查询结果（无房证明）"
NOTE = "本证明反映截至查询截止时间的不动产登记信息。请扫描二维码核验真伪与是否撤销。"
MARGIN = 72.0
QR_SIZE = 136.0  # points, quiet zone included: ~48 mm, ~0.6 mm a module at version 14


@dataclass(frozen=True)
class NoHousingDocument:
    serial: str
    holder_name: str
    holder_id_masked: str
    result_text: str
    purpose_label: str
    as_of: datetime
    valid_from: datetime
    valid_until: datetime
    authority: str
    qr_text: str


def _when(value: datetime) -> str:
    return value.astimezone(SHANGHAI).strftime("%Y年%m月%d日 %H:%M")


def _day(value: datetime) -> str:
    return value.astimezone(SHANGHAI).strftime("%Y年%m月%d日")


class _Page:
    def __init__(self, canvas: Canvas, fonts: CertificateFonts) -> None:
        self.canvas, self.fonts = canvas, fonts

    def text(self, x: float, y: float, text: str, size: float) -> None:
        obj = self.canvas.beginText(x, y)
        for name, run in self.fonts.runs(text):
            obj.setFont(name, size)
            obj.textOut(run)
        self.canvas.drawText(obj)

    def centred(self, y: float, text: str, size: float) -> None:
        self.text((A4[0] - self.fonts.width(text, size)) / 2, y, text, size)

    def right(self, y: float, text: str, size: float) -> None:
        self.text(A4[0] - MARGIN - self.fonts.width(text, size), y, text, size)

    def wrapped(self, x: float, y: float, text: str, size: float, width: float, leading: float) -> float:
        """Draw `text` broken at any character to fit `width`; returns the next baseline."""
        line, used = "", 0.0
        for char in text:
            advance = self.fonts.char_width(char, size)
            if line and used + advance > width:
                self.text(x, y, line, size)
                y, line, used = y - leading, "", 0.0
            line, used = line + char, used + advance
        if line:
            self.text(x, y, line, size)
            y -= leading
        return y


def render_no_housing_pdf(doc: NoHousingDocument, fonts: CertificateFonts) -> bytes:
    """One A4 page. Register the fonts once (`CertificateFonts.load`) and pass them in."""
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, initialFontName=fonts.primary, initialFontSize=12, pageCompression=1)
    canvas.setTitle(f"{TITLE} {doc.serial}")
    canvas.setAuthor(doc.authority)
    canvas.setSubject(TITLE)
    page = _Page(canvas, fonts)
    width, top = A4[0], A4[1] - MARGIN

    page.centred(top - 10, TITLE, 18)
    page.right(top - 44, f"证明编号：{doc.serial}", 10.5)
    canvas.setLineWidth(0.8)
    canvas.line(MARGIN, top - 54, width - MARGIN, top - 54)

    label_x, value_x, y, size, leading = MARGIN, MARGIN + 96, top - 90, 12.0, 26.0
    rows = [
        ("姓名", doc.holder_name),
        ("证件号码", doc.holder_id_masked),
        ("查询用途", doc.purpose_label),
        ("查询截止时间", _when(doc.as_of)),
        ("有效期", f"{_when(doc.valid_from)} 至 {_when(doc.valid_until)}"),
    ]
    for label, value in rows:
        page.text(label_x, y, f"{label}：", size)
        page.text(value_x, y, value, size)
        y -= leading
    page.text(label_x, y, "查询结果：", size)
    y = page.wrapped(value_x, y, doc.result_text, size, width - MARGIN - value_x, 18.0)

    qr_y = MARGIN + 40
    draw_qr(canvas, qr_matrix(doc.qr_text), width - MARGIN - QR_SIZE, qr_y, QR_SIZE)
    page.text(width - MARGIN - QR_SIZE + 22, qr_y - 12, "扫码核验真伪", 9)
    page.text(MARGIN, qr_y + 70, f"出具机关：{doc.authority}", size)
    page.text(MARGIN, qr_y + 44, f"出具日期：{_day(doc.valid_from)}", size)
    page.wrapped(MARGIN, MARGIN, NOTE, 9, width - 2 * MARGIN, 13.0)

    # The page's content stream stays uncompressed: reportlab would wrap it in ASCII85 as well
    # as Flate, in pure Python (~1.7 ms of the 10 ms budget). The fonts, most of the bytes,
    # are still compressed (the document's setting, read at save). Public API both times.
    canvas.setPageCompression(0)
    canvas.showPage()
    canvas.setPageCompression(1)
    canvas.save()
    return out.getvalue()
