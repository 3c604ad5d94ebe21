"""`python -m certificates verify --keys jwks.json --revocations crl.jws [--max-age-hours 24] TEXT`

Verifies a scanned certificate offline and prints the verdict as JSON. TEXT is the scanned text
(a token or a verification URL), or `-` to read it from standard input. Exit status: 0 valid,
1 expired, revoked or forged, 2 unusable keys or revocation list.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from certificates.keys import KeyringError
from certificates.offline import OfflineVerifier
from certificates.tokens import TokenInvalid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m certificates", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="verify a scanned certificate offline")
    verify.add_argument("--keys", type=Path, required=True, help="published JWK Set (JSON)")
    verify.add_argument("--revocations", type=Path, required=True, help="signed revocation list")
    verify.add_argument("--max-age-hours", type=float, default=24.0, help="older lists are stale")
    verify.add_argument("--now", type=datetime.fromisoformat, help="ISO 8601 with offset (default: now)")
    verify.add_argument("text", help="the scanned text, or - for standard input")
    args = parser.parse_args(argv)
    try:
        verifier = OfflineVerifier(
            json.loads(args.keys.read_text(encoding="utf-8")),
            args.revocations.read_text(encoding="ascii").strip(),
            max_age=timedelta(hours=args.max_age_hours),
        )
    except (OSError, ValueError, KeyringError, TokenInvalid) as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}, ensure_ascii=False))
        return 2
    now = args.now or datetime.now(UTC)
    if now.tzinfo is None:
        parser.error("--now needs a UTC offset, e.g. 2026-12-03T10:00:00+08:00")
    text = sys.stdin.read() if args.text == "-" else args.text
    verdict = verifier.verify(text, now)
    print(json.dumps(verdict.to_json(), ensure_ascii=False, indent=2))
    return 0 if verdict.verdict == "valid" else 1


if __name__ == "__main__":
    sys.exit(main())
