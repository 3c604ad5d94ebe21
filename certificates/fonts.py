"""Chinese fonts for certificate PDFs: embedded subsets, per-character fallback, extractable text.

Why these fonts. reportlab's CID fonts (`STSong-Light`) are referenced, not embedded: a viewer
without Chinese fonts shows nothing. `TTFont` embeds a subset of a TrueType font, but reads
TrueType outlines only (no OpenType/CFF such as Noto CJK). Debian's WenQuanYi Zen Hei covers the
basic plane; HanaMin A and B cover CJK Extension A and the supplementary planes (Extension B and
on, e.g. 𠀀 U+20000, found in some people's names). Each character is drawn in the first font of
the list that has it (`runs`).

Supplementary-plane code points in reportlab 5.1 (read in `reportlab/pdfbase/ttfonts.py`):
- Reading: `TTFontFile.extractInfo` takes the last platform-3 cmap subtable, which in HanaMinB
  is (3, 10) format 12, so `charToGlyph` does hold U+20000 and up.
- Subsetting and drawing work: `TTFont.splitString` maps every character, whatever its code
  point, to a one-byte code in a subset of at most 256 glyphs, and `makeSubset` writes a cmap
  from those byte codes to glyphs. The glyph is embedded and drawn.
- Extraction does not: `makeToUnicodeCMap` writes each target as `"<%04X>" % code point`, so
  U+20000 becomes `<20000>`, five hex digits, which is not UTF-16BE; pdftotext drops it. The
  PDF reference wants the UTF-16BE surrogate pair, `<D840DC00>`.
The fix, with the least reach: `ExtractableTTFont`, a `TTFont` subclass whose `addObjects` lets
reportlab build every object as usual, then rewrites the content of each subset's own ToUnicode
stream (found through the font dictionary reportlab just created) with correct UTF-16BE targets.
No global is patched, no reportlab code is copied; the override runs once per font per document.
`tests/integration/test_certificate_pdf.py` checks that 张𠀀 comes back out of pdftotext, so a
reportlab upgrade that changes these internals fails loudly.

Fonts are registered with `asciiReadable=False`: reportlab's default puts all of printable ASCII
into every first subset so that the content stream stays readable, which embeds ~95 unused
glyphs per font and cost ~1.3 ms of the 10 ms issue budget. The ToUnicode map keeps the text
extractable either way.

Registration costs ~0.1 s per font (cmap parsing), so `CertificateFonts.load` caches by path:
call it at start-up. A `TTFont` keeps its subsets per document (a WeakKeyDictionary keyed by the
canvas's document), so one registered font serves any number of documents built one after
another; building documents in several threads at once has not been tested: use one rendering
thread per process, or processes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont

DEBIAN_PACKAGES = "fonts-wqy-zenhei fonts-hanazono"
WQY_ZENHEI = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
HANAMIN_A = Path("/usr/share/fonts/truetype/hanazono/HanaMinA.ttf")
HANAMIN_B = Path("/usr/share/fonts/truetype/hanazono/HanaMinB.ttf")

_cache: dict[tuple[Path, ...], CertificateFonts] = {}
_cache_lock = threading.Lock()


class FontsMissing(Exception):
    """A font file the certificate PDF needs is absent or unreadable."""


def _to_unicode_cmap(name: str, subset: Sequence[int]) -> str:
    """The ToUnicode CMap reportlab writes, with UTF-16BE targets (surrogate pairs above U+FFFF)."""
    entries = [f"<{i:02X}> <{chr(code).encode('utf-16-be').hex().upper()}>" for i, code in enumerate(subset)]
    return "\n".join(
        [
            "/CIDInit /ProcSet findresource begin",
            "12 dict begin",
            "begincmap",
            "/CIDSystemInfo",
            f"<< /Registry ({name})",
            f"/Ordering ({name})",
            "/Supplement 0",
            ">> def",
            f"/CMapName /{name} def",
            "/CMapType 2 def",
            "1 begincodespacerange",
            f"<00> <{len(subset) - 1:02X}>",
            "endcodespacerange",
            f"{len(subset)} beginbfchar",
            *entries,
            "endbfchar",
            "endcmap",
            "CMapName currentdict /CMap defineresource pop",
            "end",
            "end",
        ]
    )


class ExtractableTTFont(TTFont):
    """A TTFont whose ToUnicode maps supplementary-plane characters correctly (see module doc)."""

    def addObjects(self, doc: Any) -> None:
        # reportlab drops the document's state at the end of addObjects: read it first.
        state = self._assignState(doc)
        subsets = [
            (self.getSubsetInternalName(n, doc)[1:], list(subset)) for n, subset in enumerate(state.subsets)
        ]
        super().addObjects(doc)
        fonts = doc.idToObject["BasicFonts"].dict
        for internal_name, subset in subsets:
            pdf_font = fonts[internal_name]
            stream = doc.idToObject[pdf_font.ToUnicode.name]
            stream.content = _to_unicode_cmap(pdf_font.BaseFont, subset)


class CertificateFonts:
    """Registered fonts in fallback order; the first is the text font."""

    def __init__(self, names: Sequence[str], coverage: Sequence[Any]) -> None:
        self.names = tuple(names)
        self._coverage = tuple(coverage)  # each font's charToGlyph: code point -> glyph
        self._font_of: dict[str, str] = {}
        self._unit_width: dict[str, float] = {}  # advance of a character at size 1, in its font

    @property
    def primary(self) -> str:
        return self.names[0]

    @classmethod
    def load(cls, paths: Sequence[Path] | None = None) -> CertificateFonts:
        """Register the fonts once per process (cached by path). Default: Debian's WenQuanYi Zen
        Hei, then HanaMinA if installed, then HanaMinB."""
        if paths is None:
            paths = [WQY_ZENHEI, *([HANAMIN_A] if HANAMIN_A.exists() else []), HANAMIN_B]
        key = tuple(Path(p) for p in paths)
        if not key:
            raise ValueError("CertificateFonts.load needs at least one font")
        with _cache_lock:
            if key not in _cache:
                _cache[key] = cls._register(key)
            return _cache[key]

    @classmethod
    def _register(cls, paths: tuple[Path, ...]) -> CertificateFonts:
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FontsMissing(
                f"certificate PDFs need the font files {', '.join(missing)}: on Debian/Ubuntu "
                f"`apt-get install {DEBIAN_PACKAGES}` (README: Fonts)"
            )
        names, coverage = [], []
        for i, path in enumerate(paths):
            name = f"Cert{i}-{path.stem}"
            try:
                font = ExtractableTTFont(name, str(path), subfontIndex=0, asciiReadable=False)
            except (OSError, TTFError) as e:
                raise FontsMissing(f"cannot use font {path} ({e}); reinstall {DEBIAN_PACKAGES}") from e
            pdfmetrics.registerFont(font)
            names.append(name)
            coverage.append(font.face.charToGlyph)
        return cls(names, coverage)

    def font_for(self, char: str) -> str:
        """The first font that has a glyph for `char`; the primary one if none has."""
        name = self._font_of.get(char)
        if name is None:
            code = ord(char)
            name = next(
                (n for n, cmap in zip(self.names, self._coverage, strict=True) if code in cmap),
                self.primary,
            )
            self._font_of[char] = name
        return name

    def runs(self, text: str) -> list[tuple[str, str]]:
        """`text` cut into (font name, text) runs, each drawn in one font."""
        out: list[tuple[str, str]] = []
        for char in text:
            name = self.primary if char == " " else self.font_for(char)
            if out and out[-1][0] == name:
                out[-1] = (name, out[-1][1] + char)
            else:
                out.append((name, char))
        return out

    def char_width(self, char: str, size: float) -> float:
        unit = self._unit_width.get(char)
        if unit is None:
            unit = self._unit_width[char] = pdfmetrics.stringWidth(char, self.font_for(char), 1.0)
        return unit * size

    def width(self, text: str, size: float) -> float:
        return sum(self.char_width(char, size) for char in text)
