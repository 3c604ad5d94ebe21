"""Bank catalogue (config/banks.toml), shared by the callbacks and the OAuth client-credentials code.

Secrets may be given inline (demo values) or, as production does, through `client_secret_file` /
`callback_secret_file` (e.g. a mounted secret); a file wins over an inline value. The secrets written
in the shipped `config/banks.toml` are public: a production start refuses them
(`refuse_demo_secrets`), wherever they come from.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.settings import DEMO_BANKS_FILE, ConfigurationError
from integrations.banks.base import CALLBACK_MACS
from standards import gb32100

_CODE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
MIN_SECRET_LENGTH = 16


@dataclass(frozen=True)
class BankConfig:
    code: str  # e.g. icbc-sh
    name: str
    uscc: str  # unified social credit code, GB 32100-2015
    client_id: str
    client_secret: str = field(repr=False)
    callback_url: str  # empty = the bank simulator
    callback_secret: str = field(repr=False)
    scopes: tuple[str, ...] = ()
    adapter: str = "signed-json-v1"
    # The MAC the bank verifies our callbacks with (`callback_mac`, one of CALLBACK_MACS);
    # None: the cryptography profile's (HMAC-SHA256 international, HMAC-SM3 national).
    callback_mac: str | None = None


def uscc_valid(code: str) -> bool:
    """GB 32100-2015 check character, and the embedded GB 11714 organisation code's own check
    (the one rule, `standards.gb32100`, which `services.identifiers` applies too)."""
    return gb32100.is_valid(code)


def load_banks(path: Path | str) -> list[BankConfig]:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read banks from {path}: {exc}") from exc
    return parse_banks(data, source=str(path), base_dir=path.parent)


def parse_banks(
    data: Mapping[str, Any], *, source: str = "<banks>", base_dir: Path | None = None
) -> list[BankConfig]:
    problems: list[str] = []
    banks: list[BankConfig] = []
    for index, entry in enumerate(data.get("bank", [])):
        try:
            banks.append(_bank(entry, base_dir))
        except (KeyError, TypeError, ValueError, OSError) as exc:
            problems.append(f"bank #{index + 1} ({entry.get('code', '?')}): {exc}")
    for attribute in ("code", "client_id"):
        values = [getattr(b, attribute) for b in banks]
        problems += [f"{attribute} {v!r} is used twice" for v in sorted(set(values)) if values.count(v) > 1]
    if problems:
        raise ConfigurationError(f"{source}: " + "; ".join(problems))
    return banks


def refuse_demo_secrets(banks: Iterable[BankConfig], *, demo_file: Path = DEMO_BANKS_FILE) -> None:
    """For a production start: no bank may use a secret written inline in the demo catalogue.

    Those values are in the repository, so a client signing in with one, or a callback signed with
    one, proves nothing. Compared by value, so a copy of the demo file under another name, or a
    secret file holding a demo value, is refused too. Raises ConfigurationError naming what to set."""
    demo = _inline_secrets(demo_file)
    problems = [
        f"bank {bank.code}: {name} is a demo value from {demo_file.name}; set {name}_file to a file "
        "holding the secret agreed with the bank"
        for bank in banks
        for name in ("client_secret", "callback_secret")
        if getattr(bank, name) in demo
    ]
    if problems:
        raise ConfigurationError("refusing to start in production: " + "; ".join(problems))


def _inline_secrets(path: Path) -> frozenset[str]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return frozenset()  # no demo catalogue shipped: no demo values to refuse
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read the demo banks from {path}: {exc}") from exc
    return frozenset(
        str(entry[name])
        for entry in data.get("bank", [])
        for name in ("client_secret", "callback_secret")
        if entry.get(name)
    )


def _bank(entry: Mapping[str, Any], base_dir: Path | None) -> BankConfig:
    code = str(entry["code"])
    if not _CODE.match(code):
        raise ValueError("code must be lower-case letters, digits and dashes")
    uscc = str(entry["uscc"]).upper()
    if not uscc_valid(uscc):
        raise ValueError(f"unified social credit code {uscc} fails its check")
    callback_mac = entry.get("callback_mac")
    if callback_mac is not None and callback_mac not in CALLBACK_MACS:
        raise ValueError(f"callback_mac must be one of {', '.join(sorted(CALLBACK_MACS))}")
    scopes = entry.get("scopes", [])
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise TypeError("scopes must be a list of strings")
    return BankConfig(
        code=code,
        name=str(entry["name"]),
        uscc=uscc,
        client_id=str(entry["client_id"]),
        client_secret=_secret(entry, "client_secret", base_dir),
        callback_url=str(entry.get("callback_url", "")),
        callback_secret=_secret(entry, "callback_secret", base_dir),
        scopes=tuple(scopes),
        adapter=str(entry.get("adapter", "signed-json-v1")),
        callback_mac=callback_mac,
    )


def _secret(entry: Mapping[str, Any], name: str, base_dir: Path | None) -> str:
    file = entry.get(f"{name}_file")
    if file:
        path = Path(str(file))
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        value = path.read_text(encoding="utf-8").strip()
    else:
        value = str(entry.get(name, ""))
    if len(value) < MIN_SECRET_LENGTH:
        raise ValueError(f"{name} is missing or shorter than {MIN_SECRET_LENGTH} characters")
    return value
