"""Where a certificate's QR points, and reading a token back from whatever a scanner returns.

The token travels in the URL fragment (`https://host/v#<token>`): browsers never send the
fragment, so the token stays out of server, proxy and CDN logs; the public page at /v reads it in
JavaScript and asks the verification API. A bare token is accepted too (scanner apps, the CLI).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from certificates.tokens import MAX_TOKEN_LENGTH

MAX_SCAN_LENGTH = 2048  # 2 KiB: a version 40 QR holds ~2.3 KB; anything longer is not ours
_WHITESPACE = re.compile(r"\s+")
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def verification_url(public_base_url: str, token: str) -> str:
    return f"{public_base_url.rstrip('/')}/v#{token}"


def token_from_scan(text: str) -> str | None:
    """The compact JWS in a scanned text (a bare token or a `.../v#<token>` URL), else None.

    Whitespace anywhere is dropped: scanners and copy-paste add line breaks, and neither a token
    nor our URL contains any. Nothing longer than `MAX_SCAN_LENGTH` is looked at."""
    if not isinstance(text, str) or len(text) > MAX_SCAN_LENGTH:
        return None
    text = _WHITESPACE.sub("", text)
    if "#" in text:
        try:
            parts = urlsplit(text)
        except ValueError:
            return None
        if parts.scheme not in ("http", "https") or not parts.netloc or not parts.path.endswith("/v"):
            return None
        text = parts.fragment
    if len(text) > MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(text):
        return None
    return text
