"""Sign in as each demo role through the API and print one `ROLE ACCESS_TOKEN` line per role.

Used by .ci/quality-gates to fuzz the API as every kind of caller. The identities are the demo's
documented ones (demo/ `demo_identities`, the tables of docs/demo.md); nothing here
touches the database: citizens sign in with the SMS code read from the SMS simulator's inbox,
staff with username and password, banks with OAuth2 client credentials.

    python .ci/fuzz_tokens.py --base-url http://127.0.0.1:18000 --simulator-base-port 18810
    python .ci/fuzz_tokens.py --base-url http://127.0.0.1:18000 --sms-url http://127.0.0.1:18816

Roles: citizen (the demo owner), guardian (the demo mother of a minor), clerk (a Pudong clerk),
admin, bank (the first configured bank), organisation (the demo developer's staff member).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from config.settings import load_settings  # noqa: E402
from demo import DemoIdentities, demo_identities  # noqa: E402
from integrations.banks.config import load_banks  # noqa: E402
from integrations.factory import SimulatorSuite  # noqa: E402

ROLES = ("citizen", "guardian", "clerk", "admin", "bank", "organisation")
CITIZEN_KEYS = {"citizen": "owner", "guardian": "guardian"}


class SignInFailed(RuntimeError):
    pass


def identities() -> DemoIdentities:
    return demo_identities(load_banks(load_settings().banks_file))


def _ok(response: httpx.Response, what: str) -> dict:
    if response.status_code >= 300:
        raise SignInFailed(f"{what}: HTTP {response.status_code} {response.text[:300]}")
    return response.json()  # type: ignore[no-any-return]


def sms_code(sms: httpx.Client, phone: str, *, wait_s: float = 10.0) -> str:
    deadline = time.monotonic() + wait_s
    while True:
        messages = sms.get("/messages", params={"phone": phone}).json()
        if messages:
            return str(messages[0]["params"]["code"])
        if time.monotonic() > deadline:
            raise SignInFailed(f"no SMS code arrived for {phone[:3]}****{phone[-4:]} within {wait_s}s")
        time.sleep(0.2)


def citizen_token(api: httpx.Client, sms: httpx.Client, phone: str) -> str:
    _ok(api.post("/api/v1/auth/sms-codes", json={"phone": phone}), "request SMS code")
    code = sms_code(sms, phone)
    tokens = _ok(api.post("/api/v1/auth/tokens", json={"phone": phone, "code": code}), "sign in")
    return str(tokens["access_token"])


def sign_in(role: str, *, api: httpx.Client, sms: httpx.Client, ids: DemoIdentities) -> str:
    if role in CITIZEN_KEYS:
        phone = ids.citizen(CITIZEN_KEYS[role]).phone
        if phone is None:
            raise SignInFailed(f"demo citizen {CITIZEN_KEYS[role]} has no phone")
        return citizen_token(api, sms, phone)
    if role in ("clerk", "admin", "organisation"):
        staff = next(s for s in ids.staff if s.role == role)
        body = {"username": staff.username, "password": staff.password}
        return str(_ok(api.post("/api/v1/auth/staff-tokens", json=body), f"{role} sign-in")["access_token"])
    if role == "bank":
        if not ids.banks:
            raise SignInFailed("no bank is configured (config/banks.toml)")
        bank = ids.banks[0]
        form = {
            "grant_type": "client_credentials",
            "client_id": bank.client_id,
            "client_secret": bank.client_secret,
        }
        return str(_ok(api.post("/api/v1/auth/client-tokens", data=form), "bank sign-in")["access_token"])
    raise SignInFailed(f"unknown role {role}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--sms-url", help="the SMS simulator, e.g. http://127.0.0.1:8816")
    where.add_argument("--simulator-base-port", type=int, help="ESTATE_SIMULATOR_BASE_PORT of the server")
    parser.add_argument("--roles", default=",".join(ROLES))
    parser.add_argument("--out", type=Path, help="write the lines here (mode 600) instead of stdout")
    args = parser.parse_args(argv)

    sms_port = (args.simulator_base_port or 0) + SimulatorSuite.ORDER.index("sms")
    sms_url = args.sms_url or f"http://127.0.0.1:{sms_port}"
    ids = identities()
    lines = []
    with (
        httpx.Client(base_url=args.base_url, timeout=10) as api,
        httpx.Client(base_url=sms_url, timeout=5) as sms,
    ):
        for role in args.roles.split(","):
            try:
                lines.append(f"{role} {sign_in(role, api=api, sms=sms, ids=ids)}")
            except (SignInFailed, httpx.HTTPError) as exc:
                print(f"[fuzz-tokens] cannot sign in as {role}: {exc}", file=sys.stderr)
                return 1
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.touch(mode=0o600)
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
