"""Re-encrypting personal data to the current key, and switching a database's cryptography profile.

Invariants:
* A ciphertext is readable whatever the profile (it names its key, services/pii.py), so
  re-encryption can run while the service serves: `reencrypt_all` rewrites, batch by batch, every
  sealed column that is not sealed with the current key, each row with a conditional update that
  expects the ciphertext it read (a row changed meanwhile is left for the next run), and skips
  rows already current: a rerun resumes by skipping, an interrupted run loses at most its batch.
* A blind index carries no marker: look-ups compare it for equality, so every index in the database
  is of one profile, the one `crypto_state.profile` records, and the service refuses to start
  with any other (`require_profile`). `switch_profile` recomputes them all from the decrypted
  values, under a recorded `switching_to` and a checkpoint written in each batch's transaction;
  while `switching_to` is set the service refuses to start with either profile, so nothing looks
  up by an index of the wrong profile. It is an offline step: stop the API and the workers first
  (a process started before the switch would still compute the old indexes). A rerun resumes
  after the last committed batch.
* Indexes that cannot be recomputed, because no ciphertext of their value exists, are kept:
  `access_log.person_index` (the hash chain covers it; an alias row maps the new index to the old,
  services/crypto/models.py) and certificate subjects of household members with no row in the
  register and no guardianship link (counted as `unmapped_subjects`; revocation matches them by
  their index under the other profile once a switch has finished, services/certificates/revocation.py).
* The access log moves to the new hash with one marker entry in the switch's last transaction,
  with `crypto_state.profile`: the chain and the record change together. That transaction alone
  writes `crypto_state.updated_at`, which is how a reader knows a switch has finished.

Short-lived values are not converted: OTP challenges (five minutes; a code requested before the
switch no longer matches and the citizen asks again) and Redis rate-limit keys (the counters start
afresh under the new index).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from services.audit import append_hash_switch
from services.crypto.models import STATE_ID, CryptoIndexAlias, CryptoState
from services.db import dialect
from services.pii import ID_NUMBER, PHONE, PiiVault
from standards.crypto_profile import PROFILES, ProfileName

Progress = Callable[[str, int, int], None]  # (phase, rows done, rows in the phase)


@dataclass(frozen=True)
class Sealed:
    column: str
    context: str
    index: str | None = None  # the blind-index column computed from this value


@dataclass(frozen=True)
class SealedTable:
    name: str
    sealed: tuple[Sealed, ...]


# Every sealed column (grep `vault.encrypt`): the table, the column, the vault context it was
# sealed for and the blind index derived from it.
SEALED_TABLES = (
    SealedTable("guardianship_link", (Sealed("ward_id_number_enc", ID_NUMBER, "ward_id_number_index"),)),
    SealedTable(
        "person",
        (Sealed("id_number_enc", ID_NUMBER, "id_number_index"), Sealed("phone_enc", PHONE, "phone_index")),
    ),
    SealedTable("participating_bank", (Sealed("callback_secret_enc", "bank_callback_secret"),)),
)
# Sealed fields of outbox payloads (services/messages/topics.py, services/identity/topics.py).
SEALED_PAYLOAD_FIELDS = {"phone_enc": PHONE, "code_enc": "otp"}
SUBJECTS = "certificate_subject"
OUTBOX = "outbox_message"
FINISH = "finish"
SWITCH_PHASES = (SUBJECTS, *(t.name for t in SEALED_TABLES), OUTBOX, FINISH)


class CryptoProfileMismatch(RuntimeError):
    """The service's profile is not the one the database's indexes were computed under."""


class SwitchRefused(RuntimeError):
    """A switch that would mix profiles (another switch is under way)."""


@dataclass
class ConversionReport:
    complete: bool
    profile: str
    batches: int = 0
    rows_changed: dict[str, int] = field(default_factory=dict)
    unmapped_subjects: int = 0
    audit_marker: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "profile": self.profile,
            "batches": self.batches,
            "rows_changed": self.rows_changed,
            "unmapped_subjects": self.unmapped_subjects,
            "audit_marker": self.audit_marker,
        }


async def database_profile() -> tuple[str, str | None]:
    """(the recorded profile, the profile a switch is under way to or None)."""
    state = await CryptoState.get_or_none(id=STATE_ID)
    return (state.profile, state.switching_to) if state else ("international", None)


async def require_profile(profile: str) -> None:
    """Refuse to run with a profile that is not the database's (start-up check)."""
    recorded, switching_to = await database_profile()
    if switching_to is not None:
        raise CryptoProfileMismatch(
            f"a switch of the cryptography profile to {switching_to} is under way: finish it with "
            f"`python -m api crypto switch-profile {switching_to}`, then start with "
            f"ESTATE_CRYPTO_PROFILE={switching_to}"
        )
    if recorded != profile:
        raise CryptoProfileMismatch(
            f"ESTATE_CRYPTO_PROFILE is {profile} but the database's blind indexes are {recorded}: "
            f"run `python -m api crypto switch-profile {profile}` (with the service stopped) or "
            f"start with ESTATE_CRYPTO_PROFILE={recorded}"
        )


# --- the batch engine --------------------------------------------------------------------------


def _sql(query: str) -> str:
    """`?` placeholders for SQLite, `$1, $2 ...` for PostgreSQL."""
    if dialect() != "postgres":
        return query
    parts = query.split("?")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class _Run:
    def __init__(
        self,
        *,
        vault: PiiVault,
        from_profile: ProfileName | None,
        batch_size: int,
        max_batches: int | None,
        progress: Progress | None,
        checkpointed: bool,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.vault = vault
        self.from_profile = from_profile  # None: re-encrypt only, indexes stay
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.progress = progress or (lambda *_: None)
        self.checkpointed = checkpointed
        self.report = ConversionReport(complete=False, profile=vault.profile)

    def out_of_batches(self) -> bool:
        return self.max_batches is not None and self.report.batches >= self.max_batches

    def changed(self, table: str, n: int) -> None:
        self.report.rows_changed[table] = self.report.rows_changed.get(table, 0) + n

    async def phase(
        self,
        table: str,
        columns: Sequence[str],
        convert: Callable[[BaseDBAsyncClient, list[dict[str, Any]]], Any],
        after: int = 0,
    ) -> bool:
        """Batches of `table` by id after `after`, each converted by `convert` in its own
        transaction (with the checkpoint). False when stopped by `max_batches`."""
        conn = connections.get("default")
        total = int((await conn.execute_query_dict(f"SELECT COUNT(*) AS n FROM {table}"))[0]["n"])  # noqa: S608
        done = int(
            (
                await conn.execute_query_dict(
                    _sql(f"SELECT COUNT(*) AS n FROM {table} WHERE id <= ?"),  # noqa: S608 - our table names
                    [after],
                )
            )[0]["n"]
        )
        self.progress(table, done, total)
        select = f"SELECT id, {', '.join(columns)} FROM {table} WHERE id > ? ORDER BY id LIMIT ?"  # noqa: S608
        while True:
            if self.out_of_batches():
                return False
            async with in_transaction() as tx:
                rows = await tx.execute_query_dict(_sql(select), [after, self.batch_size])
                if not rows:
                    return True
                changed = await convert(tx, rows)
                after = int(rows[-1]["id"])
                if self.checkpointed:
                    await (
                        CryptoState.filter(id=STATE_ID)
                        .using_db(tx)
                        .update(checkpoint={"phase": table, "after": after})
                    )
            self.report.batches += 1
            self.changed(table, int(changed))
            done += len(rows)
            self.progress(table, done, total)

    # --- converters ----------------------------------------------------------------------------

    async def sealed_rows(self, tx: BaseDBAsyncClient, table: SealedTable, rows: list[dict[str, Any]]) -> int:
        aliases: list[tuple[str, str]] = []
        changed = 0
        for row in rows:
            updates: dict[str, str] = {}
            for s in table.sealed:
                token = row[s.column]
                if token is None:
                    continue
                new_token = self.vault.reencrypt(str(token), context=s.context)
                if new_token != token:
                    updates[s.column] = new_token
                if s.index and self.from_profile is not None:
                    plain = self.vault.decrypt(str(token), context=s.context)
                    new_index = self.vault.blind_index(plain, context=s.context)
                    if new_index != row[s.index]:
                        updates[s.index] = new_index
                        if s.context == ID_NUMBER and row[s.index] is not None:
                            aliases.append((new_index, str(row[s.index])))
            if not updates:
                continue
            expected = [s.column for s in table.sealed] + [s.index for s in table.sealed if s.index]
            where = " AND ".join(f"{c} = ?" if row[c] is not None else f"{c} IS NULL" for c in expected)
            params = [*updates.values(), row["id"], *(row[c] for c in expected if row[c] is not None)]
            sets = ", ".join(f"{c} = ?" for c in updates)
            changed += await _execute(tx, f"UPDATE {table.name} SET {sets} WHERE id = ? AND {where}", params)  # noqa: S608
        await self._record_aliases(tx, aliases)
        return changed

    async def _record_aliases(self, tx: BaseDBAsyncClient, aliases: list[tuple[str, str]]) -> None:
        """Aliases for the old indexes the access log holds (only those: an alias is needed
        where an entry outlives its index)."""
        if not aliases or self.from_profile is None:
            return
        old = sorted({o for _, o in aliases})
        logged = {
            str(r["person_index"])
            for r in await tx.execute_query_dict(
                _sql(
                    "SELECT DISTINCT person_index FROM access_log "  # noqa: S608 - placeholders only
                    f"WHERE person_index IN ({_marks(len(old))})"
                ),
                old,
            )
        }
        rows = [
            CryptoIndexAlias(new_index=n, old_index=o, old_profile=self.from_profile)
            for n, o in sorted(set(aliases))
            if o in logged
        ]
        if rows:
            await CryptoIndexAlias.bulk_create(rows, ignore_conflicts=True, using_db=tx)

    async def subjects(self, tx: BaseDBAsyncClient, rows: list[dict[str, Any]]) -> int:
        """Certificate subjects keep only an index: its value is found through a person or a
        ward with the same (old) index, which the switch converts after this phase."""
        assert self.from_profile is not None
        old = sorted({str(r["id_number_index"]) for r in rows})
        marks = _marks(len(old))
        sealed = [
            str(r["enc"])
            for r in await tx.execute_query_dict(
                _sql(f"SELECT id_number_enc AS enc FROM person WHERE id_number_index IN ({marks})"),  # noqa: S608
                old,
            )
        ] + [
            str(r["enc"])
            for r in await tx.execute_query_dict(
                _sql(
                    "SELECT ward_id_number_enc AS enc FROM guardianship_link "  # noqa: S608 - placeholders only
                    f"WHERE ward_id_number_index IN ({marks})"
                ),
                old,
            )
        ]
        new_of: dict[str, str] = {}
        for token in sealed:
            plain = self.vault.decrypt(token, context=ID_NUMBER)
            new_of[self.vault.blind_index(plain, profile=self.from_profile)] = self.vault.blind_index(plain)
        changed = 0
        for row in rows:
            new = new_of.get(str(row["id_number_index"]))
            if new is None:
                self.report.unmapped_subjects += 1
                continue
            changed += await _execute(
                tx,
                "UPDATE certificate_subject SET id_number_index = ? WHERE id = ? AND id_number_index = ?",
                [new, row["id"], row["id_number_index"]],
            )
        return changed

    async def payloads(self, tx: BaseDBAsyncClient, rows: list[dict[str, Any]]) -> int:
        changed = 0
        cast = "CAST(? AS JSONB)" if dialect() == "postgres" else "?"
        for row in rows:
            payload = row["payload"]
            payload = json.loads(payload) if isinstance(payload, str | bytes) else payload
            if not isinstance(payload, dict):
                continue
            rewritten = dict(payload)
            for key, context in SEALED_PAYLOAD_FIELDS.items():
                if isinstance(payload.get(key), str):
                    rewritten[key] = self.vault.reencrypt(payload[key], context=context)
            if rewritten != payload:
                text = json.dumps(rewritten, ensure_ascii=False, separators=(",", ":"))
                changed += await _execute(
                    tx,
                    f"UPDATE {OUTBOX} SET payload = {cast} WHERE id = ?",  # noqa: S608 - constants
                    [text, row["id"]],
                )
        return changed

    async def table_phase(self, name: str, after: int = 0) -> bool:
        if name == SUBJECTS:
            return await self.phase(SUBJECTS, ["id_number_index"], self.subjects, after)
        if name == OUTBOX:
            return await self.phase(OUTBOX, ["payload"], self.payloads, after)
        table = next(t for t in SEALED_TABLES if t.name == name)
        columns = [s.column for s in table.sealed] + [s.index for s in table.sealed if s.index]
        return await self.phase(name, columns, lambda tx, rows: self.sealed_rows(tx, table, rows), after)


async def _execute(tx: BaseDBAsyncClient, query: str, params: list[Any]) -> int:
    count, _ = await tx.execute_query(_sql(query), params)
    return int(count)


# --- the commands ------------------------------------------------------------------------------


async def reencrypt_all(
    *,
    vault: PiiVault,
    batch_size: int = 500,
    max_batches: int | None = None,
    progress: Progress | None = None,
) -> ConversionReport:
    """Seal every sealed column and payload field with `vault`'s current key (`python -m api pii
    reencrypt`). Indexes are left alone, so the database's profile must be the vault's."""
    await require_profile(vault.profile)
    run = _Run(
        vault=vault,
        from_profile=None,
        batch_size=batch_size,
        max_batches=max_batches,
        progress=progress,
        checkpointed=False,
    )
    for name in (*(t.name for t in SEALED_TABLES), OUTBOX):
        if not await run.table_phase(name):
            return run.report
    run.report.complete = True
    return run.report


async def switch_profile(
    *,
    vault: PiiVault,
    now: Callable[[], datetime],
    batch_size: int = 500,
    max_batches: int | None = None,
    progress: Progress | None = None,
) -> ConversionReport:
    """Convert the database to `vault.profile` (`python -m api crypto switch-profile`): every
    ciphertext re-sealed, every blind index recomputed, the access log moved to the profile's
    hash, the profile recorded. Resumes a switch under way; refuses one to another profile."""
    target = vault.profile
    if target not in PROFILES:
        raise ValueError(f"unknown profile {target!r}")
    async with in_transaction() as tx:
        state = await CryptoState.filter(id=STATE_ID).using_db(tx).select_for_update().first()
        if state is None:
            state = await CryptoState.create(id=STATE_ID, profile="international", using_db=tx)
        if state.switching_to not in (None, target):
            raise SwitchRefused(
                f"a switch to {state.switching_to} is under way: finish it first "
                f"(`python -m api crypto switch-profile {state.switching_to}`)"
            )
        if state.profile == target and state.switching_to is None:
            already = True
        else:
            already = False
            if state.switching_to is None:
                state.switching_to, state.checkpoint = target, {"phase": SWITCH_PHASES[0], "after": 0}
                await state.save(using_db=tx, update_fields=["switching_to", "checkpoint"])
        from_profile: ProfileName = state.profile  # type: ignore[assignment]
        checkpoint = dict(state.checkpoint or {"phase": SWITCH_PHASES[0], "after": 0})
    if already:
        return await reencrypt_all(
            vault=vault, batch_size=batch_size, max_batches=max_batches, progress=progress
        )

    run = _Run(
        vault=vault,
        from_profile=from_profile,
        batch_size=batch_size,
        max_batches=max_batches,
        progress=progress,
        checkpointed=True,
    )
    start = SWITCH_PHASES.index(checkpoint["phase"])
    for i, name in enumerate(SWITCH_PHASES[start:-1], start=start):
        after = int(checkpoint["after"]) if i == start else 0
        if not await run.table_phase(name, after):
            return run.report
        if i + 1 < len(SWITCH_PHASES):
            await CryptoState.filter(id=STATE_ID).update(
                checkpoint={"phase": SWITCH_PHASES[i + 1], "after": 0}
            )
    async with in_transaction() as tx:
        run.report.audit_marker = await append_hash_switch(tx, profile=target, occurred_at=now())
        await (
            CryptoState.filter(id=STATE_ID, switching_to=target)
            .using_db(tx)
            .update(profile=target, switching_to=None, checkpoint=None, updated_at=now())
        )
    run.report.complete = True
    return run.report
