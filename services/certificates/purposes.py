"""The certificate catalogue: issuing authority and purposes, read from config/certificates.toml.

Purposes, their validity and their household rule are data, not code: a new purpose, or a
purpose that starts counting the household, is a change of that file. The loader refuses a file
it would have to guess about (an unknown household rule, a validity outside 1..366 days).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PERSON = "person"
HOUSEHOLD = "household"
_RULES = frozenset({PERSON, HOUSEHOLD})


class CatalogueError(ValueError):
    """config/certificates.toml is not usable; the message says where."""


@dataclass(frozen=True, slots=True)
class Purpose:
    code: str
    label: str
    label_en: str
    household: str  # person | household
    validity_days: int

    @property
    def counts_household(self) -> bool:
        return self.household == HOUSEHOLD


@dataclass(frozen=True, slots=True)
class Catalogue:
    cert_type: str
    title: str
    title_en: str
    authority: str
    authority_en: str
    purposes: dict[str, Purpose]

    @classmethod
    def load(cls, path: Path) -> Catalogue:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CatalogueError(f"{path}: {exc}") from exc
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, source: str = "catalogue") -> Catalogue:
        try:
            default_days = int(data.get("default_validity_days", 30))
            purposes = {code: _purpose(code, entry, default_days) for code, entry in data["purposes"].items()}
            catalogue = cls(
                cert_type=str(data["cert_type"]),
                title=str(data["title"]),
                title_en=str(data["title_en"]),
                authority=str(data["authority"]),
                authority_en=str(data["authority_en"]),
                purposes=purposes,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CatalogueError(f"{source}: {exc!r}") from exc
        if not purposes:
            raise CatalogueError(f"{source}: no purposes")
        return catalogue


def _purpose(code: str, entry: dict[str, Any], default_days: int) -> Purpose:
    rule = str(entry.get("household", PERSON))
    if rule not in _RULES:
        raise ValueError(f"purposes.{code}.household must be one of {sorted(_RULES)}, not {rule!r}")
    days = int(entry.get("validity_days", default_days))
    if not 1 <= days <= 366:
        raise ValueError(f"purposes.{code}.validity_days must be 1..366, not {days}")
    return Purpose(
        code=code,
        label=str(entry["label"]),
        label_en=str(entry["label_en"]),
        household=rule,
        validity_days=days,
    )
