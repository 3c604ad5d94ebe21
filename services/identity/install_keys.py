"""Keys of an embedded install: made at random on first start, kept under `key_dir`.

The embedded profile runs with no configuration, so it cannot ask for keys; deriving them from a
value written in the source would give every install the same keys, and anyone who read the
source could sign an admin token for all of them (issue 8, item 5). Instead each install makes its
own on first start:

- `jwt-ed25519.pem` (international profile) or `jwt-sm2.pem` (national): the access-token signing
  key, unless `ESTATE_JWT_PRIVATE_KEY_FILE` is set. When the cryptography profile changes, the
  key of the other algorithm is retired as `jwt-ed25519.pub.pem` / `jwt-sm2.pub.pem` (public
  half written first, then the private file deleted), so the tokens it signed keep verifying
  until they expire and it can sign no more (`jwt_keys`);
- `install-secrets.json`: the OTP/HMAC secret, the PII encryption key and the blind-index key,
  each only where the setting was left at its published development default.
- `pii-sm4-gcm.key`: the national profile's personal-data key (SM4-GCM, 16 bytes, base64),
  unless `ESTATE_PII_SM4_KEY` is set; its own file, so installs made before it keep theirs.

Invariants: a key file is created with `O_CREAT | O_EXCL` and mode 0600 inside a 0700 directory,
so two processes starting at once end up with one key (the loser reads the winner's file); a key
file that group or others may read is refused, not used; nothing is ever derived from a constant.

One exception keeps old demo data readable: an install whose SQLite database was written before
this module existed holds ID numbers encrypted under the published development keys. For it the
PII and blind-index keys stay the development ones (recorded in the secrets file, with a warning
at start) until the database is deleted and seeded again. Production never gets here: it refuses
to start with any development default (config/settings.py).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from config.settings import DEV_PII_KEY, DEV_SECRET, Profile
from standards.crypto_profile import (
    EDDSA,
    SM2SM3,
    SignatureAlgorithm,
    SigningKey,
    VerifyingKey,
    generate_signing_key,
    load_signing_key,
    load_verifying_key,
)

log = logging.getLogger("estate.install_keys")

JWT_KEY_FILE = "jwt-ed25519.pem"  # the international profile's (the only one before the national)
JWT_KEY_FILES: dict[SignatureAlgorithm, str] = {EDDSA: JWT_KEY_FILE, SM2SM3: "jwt-sm2.pem"}
PII_SM4_KEY_FILE = "pii-sm4-gcm.key"
SECRETS_FILE = "install-secrets.json"
_DEV_BLIND_INDEX_KEY = DEV_SECRET + "-blind-index"


class KeyFileError(RuntimeError):
    """A key file exists but must not be used (readable by others, unreadable, malformed)."""


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _check_private(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path} may be read by other users (mode {stat.filemode(mode)}); "
            f"run `chmod 600 {path}` or remove it to have a new key made"
        )


def _create_exclusive(path: Path, content: bytes) -> bool:
    """Write `content` to a new owner-only file; False if the file exists already."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    return True


def ensure_private_key(path: Path, make: Callable[[], bytes]) -> Path:
    """The key file at `path`, made with `make()` if there is none yet."""
    _private_dir(path.parent)
    if _create_exclusive(path, make()):
        log.info("made a new install key", extra={"path": str(path)})
    _check_private(path)
    return path


def _retired_name(key_file: str) -> str:
    return key_file.removesuffix(".pem") + ".pub.pem"


def jwt_keys(key_dir: Path, algorithm: SignatureAlgorithm) -> tuple[SigningKey, list[VerifyingKey]]:
    """This install's access-token key of `algorithm` (made on first start), and the public keys it
    retired when the profile changed, which keep verifying.

    A private key file of the other algorithm means the profile changed since it was made: it is
    retired here, public half first (written whole, then renamed into place), private file
    deleted after, so a crash in between leaves both and the next start finishes the job. Two
    processes starting at once may both retire it: they write the same public key, and the
    second unlink finds nothing."""
    path = ensure_private_key(
        key_dir / JWT_KEY_FILES[algorithm], lambda: generate_signing_key(algorithm).pem()
    )
    signing = _load_jwt_key(path)
    if signing.algorithm != algorithm:
        raise KeyFileError(
            f"{path} holds a {signing.algorithm} key, not {algorithm}: remove it to have one made"
        )
    for other, name in JWT_KEY_FILES.items():
        if other != algorithm:
            _retire(key_dir / name)
    previous = []
    for name in JWT_KEY_FILES.values():  # a key retired two switches ago may still verify: harmless
        retired = key_dir / _retired_name(name)
        if retired.exists():
            try:
                previous.append(load_verifying_key(retired.read_bytes()))
            except ValueError as exc:
                raise KeyFileError(f"{retired} is not a PEM public key of Ed25519 or SM2: {exc}") from exc
    return signing, previous


def _load_jwt_key(path: Path) -> SigningKey:
    _check_private(path)
    try:
        return load_signing_key(path.read_bytes())
    except ValueError as exc:
        raise KeyFileError(f"{path} is not a PEM private key of Ed25519 or SM2: {exc}") from exc


def _retire(path: Path) -> None:
    """Keep the public half of the private key at `path`, then delete the private key."""
    try:
        old = _load_jwt_key(path).public_key()
    except FileNotFoundError:
        return  # nothing to retire, or another process retired it a moment ago
    retired = path.with_name(_retired_name(path.name))
    fd, tmp = tempfile.mkstemp(prefix=retired.name, suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "wb") as out:
        out.write(old.pem())
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, retired)
    path.unlink(missing_ok=True)
    log.warning(
        "the cryptography profile changed: retired the access-token key of the other algorithm, "
        "which keeps verifying the tokens it signed",
        extra={"path": str(retired), "algorithm": old.algorithm},
    )


def _fresh_secrets() -> dict[str, str]:
    return {
        "secret_key": secrets.token_urlsafe(48),
        "pii_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        "blind_index_key": secrets.token_urlsafe(48),
    }


def _read_secrets(path: Path) -> dict[str, str]:
    _check_private(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path} is not a readable install-secrets file: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in _fresh_secrets()):
        raise KeyFileError(f"{path} lacks one of {sorted(_fresh_secrets())}")
    return data


def install_secrets(key_dir: Path, *, legacy_database: bool) -> dict[str, str]:
    """This install's secrets, made on first call. `legacy_database`: a database written under
    the development PII keys exists already, so those two keys are kept (see the module doc)."""
    path = key_dir / SECRETS_FILE
    _private_dir(key_dir)
    fresh = _fresh_secrets()
    if legacy_database:
        fresh |= {"pii_key": DEV_PII_KEY, "blind_index_key": _DEV_BLIND_INDEX_KEY, "legacy": "dev-pii-keys"}
    if _create_exclusive(path, json.dumps(fresh, indent=2).encode()):
        log.info("made new install secrets", extra={"path": str(path)})
    data = _read_secrets(path)
    if data.get("legacy"):
        log.warning(
            "this install's database was written under the published development PII keys; "
            "delete it and start again (the demo is seeded anew) to encrypt under a key of its own",
            extra={"path": str(path)},
        )
    return data


def _sqlite_file(database_url: str) -> Path | None:
    if not database_url.startswith("sqlite://"):
        return None
    name = database_url.removeprefix("sqlite://").split("?", 1)[0]
    return None if name in ("", ":memory:") else Path(name)


def with_install_secrets(settings: Any) -> Any:
    """`settings` with every secret left at its development default replaced by this install's
    own. Explicitly configured values always win; production is never changed (it refuses the
    defaults outright)."""
    if settings.profile is not Profile.EMBEDDED:
        return settings
    if getattr(settings, "pii_sm4_key", None) is None:
        path = ensure_private_key(
            Path(settings.key_dir) / PII_SM4_KEY_FILE, lambda: base64.b64encode(secrets.token_bytes(16))
        )
        settings = settings.model_copy(update={"pii_sm4_key": SecretStr(path.read_text().strip())})
    defaults = {
        "secret_key": DEV_SECRET,
        "pii_key": DEV_PII_KEY,
        "blind_index_key": _DEV_BLIND_INDEX_KEY,
    }
    left_default = [
        name for name, dev in defaults.items() if getattr(settings, name).get_secret_value() == dev
    ]
    if not left_default:
        return settings
    database = _sqlite_file(settings.database_url)
    key_dir = Path(settings.key_dir)
    legacy = (
        not (key_dir / SECRETS_FILE).exists()
        and database is not None
        and database.exists()
        and database.stat().st_size > 0
    )
    own = install_secrets(key_dir, legacy_database=legacy)
    return settings.model_copy(update={name: SecretStr(own[name]) for name in left_default})
