"""The certificate PDF read back by real tools: poppler (pdftoppm, pdffonts, pdftotext) and ZXing.

Needs poppler-utils and the fonts (fonts-wqy-zenhei, fonts-hanazono); a missing tool fails the
test with the package to install, it never skips.
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from certificates.keys import CertificateKeyring
from certificates.links import token_from_scan, verification_url
from certificates.pdf import CertificateFonts, NoHousingDocument, render_no_housing_pdf
from certificates.tokens import CertificateClaims
from tests.support.tools import require_tool

NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
NAME = "张𠀀"  # U+20000 is outside the basic plane: HanaMin, surrogate pair in ToUnicode
A4_POINTS = (595.28, 841.89)


def _tool(name: str) -> str:
    return require_tool(name, package="poppler-utils")


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=60).stdout


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertificateKeyring, NoHousingDocument, Path]:
    try:
        import zxingcpp  # noqa: F401
    except ImportError:
        pytest.fail("the zxingcpp module is missing: `python3 dev.py setup` installs zxing-cpp")
    keyring = CertificateKeyring.ensure(tmp_path_factory.mktemp("keys") / "k")
    claims = CertificateClaims(
        serial="NH2026120300042",
        cert_type="no_housing",
        purpose="house_purchase",
        holder="张*",
        issued_at=NOW,
        valid_until=NOW + timedelta(days=30),
        as_of=NOW - timedelta(minutes=5),
    )
    doc = NoHousingDocument(
        serial=claims.serial,
        holder_name=NAME,
        holder_id_masked="1101**********1239",
        result_text="经查询，截至查询截止时间，申请人在本市不动产登记簿中无住房登记记录。" * 2,
        purpose_label="购房",
        as_of=claims.as_of,
        valid_from=NOW,
        valid_until=claims.valid_until,
        authority="上海市不动产登记事务中心",
        qr_text=verification_url("https://estate.example.gov.cn", keyring.sign_certificate(claims)),
    )
    path = tmp_path_factory.mktemp("pdf") / "certificate.pdf"
    path.write_bytes(render_no_housing_pdf(doc, CertificateFonts.load()))
    return keyring, doc, path


def test_the_qr_in_the_rasterised_pdf_decodes_to_a_verifiable_token(
    issued: tuple[CertificateKeyring, NoHousingDocument, Path],
) -> None:
    import zxingcpp

    keyring, doc, path = issued
    root = path.with_name("page")
    _run(_tool("pdftoppm"), "-r", "150", "-png", "-singlefile", str(path), str(root))
    image = Image.open(root.with_suffix(".png"))
    codes = [c for c in zxingcpp.read_barcodes(image) if c.format == zxingcpp.BarcodeFormat.QRCode]
    assert len(codes) == 1, f"expected one QR code, ZXing found {codes}"
    assert codes[0].text == doc.qr_text
    token = token_from_scan(codes[0].text)
    assert token is not None
    assert keyring.verify_certificate(token).serial == doc.serial


def test_every_font_is_an_embedded_subset(issued: tuple[CertificateKeyring, NoHousingDocument, Path]) -> None:
    _, _, path = issued
    lines = _run(_tool("pdffonts"), str(path)).splitlines()[2:]
    assert lines, "pdffonts lists no font"
    for line in lines:
        # name, type, encoding, emb, sub, uni, object, generation: type may be two words
        columns = line.split()
        emb, sub, uni = columns[-5:-2]
        assert (emb, sub, uni) == ("yes", "yes", "yes"), line
        assert re.match(r"[A-Z]{6}\+", columns[0]), f"not a subset: {line}"
        assert "Type 1" not in line and "CID Type 0" not in line, line
        assert not re.search(r"Helvetica|Times|Courier|Symbol|Dingbats|STSong|HeiseiMin|HYSMyeongJo", line)


def test_text_extracts_intact_including_the_supplementary_plane_name(
    issued: tuple[CertificateKeyring, NoHousingDocument, Path],
) -> None:
    _, doc, path = issued
    text = _run(_tool("pdftotext"), "-enc", "UTF-8", str(path), "-")
    assert NAME in text
    assert "无房证明" in text and "不动产登记信息查询结果" in text
    assert doc.serial in text and doc.holder_id_masked in text and doc.authority in text
    assert "\ufffd" not in text


def test_one_a4_page(issued: tuple[CertificateKeyring, NoHousingDocument, Path]) -> None:
    _, _, path = issued
    info = _run(_tool("pdfinfo"), str(path))
    assert re.search(r"^Pages:\s+1$", info, re.M), info
    size = re.search(r"^Page size:\s+([\d.]+) x ([\d.]+) pts", info, re.M)
    assert size is not None, info
    assert (float(size[1]), float(size[2])) == pytest.approx(A4_POINTS, abs=0.5)
