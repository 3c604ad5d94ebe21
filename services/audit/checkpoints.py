"""Signed checkpoints of the access log: verify in time proportional to what came after them.

A checkpoint says "entry `seq` of the chain has hash `hash`, and entries after it are hashed with
`algorithm`", at `created_at`, signed with the checkpoint key `key_id`: Ed25519 under the
international profile, SM2 with SM3 under the national one (standards/crypto_profile.py; a key
verifies with its own algorithm, so checkpoints of both profiles stay verifiable). That key is its
own: neither the access-token key nor a certificate key, and only `audit checkpoint` holds it.

Invariants
- A checkpoint is signed only over a chain that verifies: `take_checkpoint` first walks from the
  latest trusted checkpoint to the head, so tampering is never laundered into a signature.
- A checkpoint is trusted only if its signature is valid under a configured public key. One that
  is not (bad signature, unknown key) or that disagrees with the chain (the entry at its seq has
  another hash, or the walk passes it with another hash) fails verification: it is never skipped
  in favour of an older one, since a forged checkpoint in the table is itself a sign of tampering.
- Verification from a checkpoint trusts the entries up to it and walks only those after it;
  `full=True` walks from the genesis, or, when old partitions were dropped, from the first kept
  entry, whose link is then bound by the oldest checkpoint at or after the entry before it.

Threats: checkpoints published outside the database (`--publish FILE`: one JSON line each, e.g.
on a WORM share or mailed to the supervisor) defeat someone who rewrites the table, every later
hash, the head *and* the checkpoint table: they cannot sign, and `verify --checkpoint FILE` trusts
the file, not the table. A stolen checkpoint key defeats that; rotate it (the old public key stays
trusted through `ESTATE_AUDIT_CHECKPOINT_PUBLIC_KEY_FILES`) and keep it off the API servers.

Signed bytes: `estate.access_log.checkpoint.v1\\n` + UTF-8 JSON, sorted keys, no whitespace, of
seq, hash, algorithm, created_at (UTC, ISO 8601 with microseconds) and key_id. The signature is
base64url without padding. `key_id` is derived from the public key as certificate kids are
(certificates/keys.py: kid_of).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tortoise import connections

from certificates.keys import kid_of
from services.audit.log import GENESIS, ChainReport, ChainStart, verify_chain
from services.audit.models import AccessLogCheckpoint, AccessLogHead
from services.clock import Clock
from standards.crypto_profile import SigningKey, VerifyingKey

_DOMAIN = b"estate.access_log.checkpoint.v1\n"


class CheckpointError(Exception):
    """A checkpoint cannot be made or read (no key, an empty log, a malformed published file)."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    algorithm: str
    created_at: datetime
    key_id: str
    signature: str

    def signed_bytes(self) -> bytes:
        return signed_bytes(self.seq, self.hash, self.algorithm, self.created_at, self.key_id)

    def as_dict(self) -> dict[str, Any]:
        """The published form: one JSON line of a checkpoint file."""
        return {
            "seq": self.seq,
            "hash": self.hash,
            "algorithm": self.algorithm,
            "created_at": _utc_text(self.created_at),
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Checkpoint:
        try:
            return cls(
                seq=int(data["seq"]),
                hash=str(data["hash"]),
                algorithm=str(data["algorithm"]),
                created_at=datetime.fromisoformat(str(data["created_at"])).astimezone(UTC),
                key_id=str(data["key_id"]),
                signature=str(data["signature"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"not a checkpoint: {exc!r}") from exc

    @classmethod
    def from_row(cls, row: AccessLogCheckpoint) -> Checkpoint:
        return cls(row.seq, row.hash, row.algorithm, row.created_at, row.key_id, row.signature)


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def signed_bytes(seq: int, hash_: str, algorithm: str, created_at: datetime, key_id: str) -> bytes:
    document = {
        "seq": int(seq),
        "hash": hash_,
        "algorithm": algorithm,
        "created_at": _utc_text(created_at),
        "key_id": key_id,
    }
    return _DOMAIN + json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


class CheckpointKeys:
    """The key that signs checkpoints (None for a verifier without it) and the public keys trusted."""

    def __init__(self, signing: SigningKey | None, trusted: Iterable[VerifyingKey] = ()) -> None:
        self.signing = signing
        self.trusted: dict[str, VerifyingKey] = {kid_of(k): k for k in trusted}
        if signing is not None:
            self.trusted[kid_of(signing.public_key())] = signing.public_key()

    def sign(self, *, seq: int, hash_: str, algorithm: str, created_at: datetime) -> Checkpoint:
        if self.signing is None:
            raise CheckpointError("no checkpoint signing key is configured")
        key_id = kid_of(self.signing.public_key())
        signature = self.signing.sign(signed_bytes(seq, hash_, algorithm, created_at, key_id))
        return Checkpoint(seq, hash_, algorithm, created_at.astimezone(UTC), key_id, _b64url(signature))

    def problem_with(self, checkpoint: Checkpoint) -> tuple[str, str] | None:
        """(problem, explanation) if `checkpoint` is not to be trusted, else None."""
        key = self.trusted.get(checkpoint.key_id)
        if key is None:
            return "checkpoint_unknown_key", f"signed by key {checkpoint.key_id!r}, which is not trusted here"
        try:
            signature = _unb64url(checkpoint.signature)
        except ValueError:
            signature = b""
        if not key.verify(signature, checkpoint.signed_bytes()):
            return "checkpoint_bad_signature", f"its signature fails under key {checkpoint.key_id!r}"
        return None


# --- the table and the published file ------------------------------------------------------------


async def stored_checkpoints() -> list[Checkpoint]:
    """Every checkpoint in the table, by seq (a few a day: small)."""
    rows = await AccessLogCheckpoint.all().order_by("seq", "id")
    return [Checkpoint.from_row(r) for r in rows]


def publish(path: Path, checkpoint: Checkpoint) -> None:
    """Append `checkpoint` to `path` as one JSON line, flushed to disk."""
    line = json.dumps(checkpoint.as_dict(), sort_keys=True, separators=(",", ":")) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def last_published(path: Path) -> Checkpoint:
    """The last checkpoint in a file `publish` appends to."""
    last = None
    try:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    last = line
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint file {path}: {exc.strerror}") from exc
    if last is None:
        raise CheckpointError(f"{path} holds no checkpoint")
    try:
        return Checkpoint.from_dict(json.loads(last))
    except ValueError as exc:
        raise CheckpointError(f"the last line of {path} is not a checkpoint: {exc}") from exc


# --- verification and taking a checkpoint --------------------------------------------------------


async def _refused(checkpoint: Checkpoint, problem: str, why: str) -> ChainReport:
    head = await AccessLogHead.get_or_none(id=1)
    return ChainReport(
        ok=False,
        entries_checked=0,
        head_seq=head.last_seq if head else 0,
        head_hash=head.last_hash if head else GENESIS.hash or "",
        first_bad_seq=checkpoint.seq,
        problem=problem,
        head_algorithm=head.hash_algorithm if head else "sha256",
        anchor_seq=checkpoint.seq,
        detail=f"checkpoint at seq {checkpoint.seq} refused: {why}",
    )


async def verify_log(
    *, keys: CheckpointKeys, full: bool = False, published: Checkpoint | None = None, batch_size: int = 5000
) -> ChainReport:
    """Verify from the latest trusted checkpoint (the table's, or `published`), or with `full`
    from the first entry kept; see the module docstring."""
    checkpoints = [published] if published is not None else await stored_checkpoints()
    for checkpoint in checkpoints:
        refused = keys.problem_with(checkpoint)
        if refused is not None:
            return await _refused(checkpoint, *refused)
    anchors: dict[int, tuple[str, str]] = {}
    for checkpoint in checkpoints:
        if anchors.setdefault(checkpoint.seq, (checkpoint.hash, checkpoint.algorithm)) != (
            checkpoint.hash,
            checkpoint.algorithm,
        ):
            return await _refused(
                checkpoint, "checkpoint_mismatch", "another checkpoint of its seq disagrees"
            )
    if checkpoints and not full:
        latest = max(checkpoints, key=lambda c: c.seq)
        start = ChainStart(latest.seq, latest.hash, latest.algorithm)
        return await verify_chain(start=start, anchor_seq=latest.seq, batch_size=batch_size)
    rows = await connections.get("default").execute_query_dict("SELECT min(seq) AS first FROM access_log")
    if rows and rows[0]["first"] is not None:
        dropped_up_to = int(rows[0]["first"]) - 1
    else:  # no entry at all: none yet, or every month dropped
        head = await AccessLogHead.get_or_none(id=1)
        dropped_up_to = head.last_seq if head else 0
    if dropped_up_to == 0:
        return await verify_chain(anchors=anchors, batch_size=batch_size)
    covering = [c for c in checkpoints if c.seq >= dropped_up_to]
    anchor = min(covering, key=lambda c: c.seq) if covering else None
    if anchor is not None and anchor.seq == dropped_up_to:
        start = ChainStart(anchor.seq, anchor.hash, anchor.algorithm)
    else:
        start = ChainStart(dropped_up_to, None, None)
    later = {seq: a for seq, a in anchors.items() if seq > dropped_up_to}
    return await verify_chain(
        start=start, anchors=later, anchor_seq=anchor.seq if anchor else None, batch_size=batch_size
    )


async def latest_trusted_seq(keys: CheckpointKeys) -> int | None:
    """The latest checkpoint's seq, if every one in the table is trusted; CheckpointError if not."""
    checkpoints = await stored_checkpoints()
    for checkpoint in checkpoints:
        refused = keys.problem_with(checkpoint)
        if refused is not None:
            raise CheckpointError(f"checkpoint at seq {checkpoint.seq} refused: {refused[1]}")
    return max((c.seq for c in checkpoints), default=None)


async def take_checkpoint(
    *, keys: CheckpointKeys, clock: Clock, batch_size: int = 5000
) -> tuple[ChainReport, Checkpoint | None]:
    """Verify from the latest trusted checkpoint, then sign and store the head the walk reached;
    no checkpoint (None) if the walk failed."""
    if keys.signing is None:
        raise CheckpointError("no checkpoint signing key is configured")
    report = await verify_log(keys=keys, batch_size=batch_size)
    if not report.ok:
        return report, None
    if report.head_seq == 0:
        raise CheckpointError("the access log is empty: nothing to checkpoint")
    checkpoint = keys.sign(
        seq=report.head_seq, hash_=report.head_hash, algorithm=report.head_algorithm, created_at=clock.now()
    )
    await AccessLogCheckpoint.create(
        seq=checkpoint.seq,
        hash=checkpoint.hash,
        algorithm=checkpoint.algorithm,
        created_at=checkpoint.created_at,
        key_id=checkpoint.key_id,
        signature=checkpoint.signature,
    )
    return report, checkpoint
