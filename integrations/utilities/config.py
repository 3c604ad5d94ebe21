"""The provider catalogue (config/providers.toml): which provider serves which kind and district.

Adding a provider is one `[[provider]]` entry. The loader refuses a catalogue where two providers
serve the same kind in one district, and (by default) one that leaves a district without a provider
for some kind, so gaps surface at start-up rather than in a citizen's transfer.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.settings import ConfigurationError
from integrations.utilities.base import UtilityKind
from standards.gb2260 import SHANGHAI_DISTRICTS

ALL_DISTRICTS = "*"
_NAME = re.compile(r"^[a-z_]+\.[a-z0-9][a-z0-9-]*$")
_DISTRICT = re.compile(r"^\d{6}$")


@dataclass(frozen=True)
class ProviderConfig:
    name: str  # e.g. water.shanghai-chengtou
    kind: UtilityKind
    districts: tuple[str, ...]
    adapter: str  # a key of integrations.utilities.http.ADAPTERS
    base_url: str = ""  # empty = the utilities simulator
    display_name: str = ""
    timeout_s: float | None = None  # per call; None = Settings.external_timeout_s
    dedupes: bool = True  # deduplicates transfers by our idempotency key (else: never retried)


@dataclass(frozen=True)
class ProviderCatalogue:
    districts: Mapping[str, str]  # county code -> name: the area this catalogue covers
    providers: tuple[ProviderConfig, ...]

    def serving(self) -> dict[tuple[UtilityKind, str], ProviderConfig]:
        """(kind, district code) -> the provider that serves it."""
        return {(p.kind, d): p for p in self.providers for d in p.districts}

    def gaps(self, kinds: Iterable[UtilityKind] = tuple(UtilityKind)) -> list[tuple[UtilityKind, str]]:
        served = self.serving()
        return [(k, d) for k in kinds for d in self.districts if (k, d) not in served]

    def by_name(self, name: str) -> ProviderConfig:
        for provider in self.providers:
            if provider.name == name:
                return provider
        raise KeyError(name)


def load_providers(path: Path | str, *, require_full_coverage: bool = True) -> ProviderCatalogue:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read utility providers from {path}: {exc}") from exc
    return parse_providers(data, source=str(path), require_full_coverage=require_full_coverage)


def parse_providers(
    data: Mapping[str, Any], *, source: str = "<providers>", require_full_coverage: bool = True
) -> ProviderCatalogue:
    problems: list[str] = []
    listed = data.get("area", {}).get("districts", SHANGHAI_DISTRICTS)
    districts = {str(k): str(v) for k, v in dict(listed).items()}
    if not districts:
        problems.append("[area] districts is empty")
    problems += [f"district code {d!r} is not 6 digits" for d in districts if not _DISTRICT.match(d)]
    providers: list[ProviderConfig] = []
    for index, entry in enumerate(data.get("provider", [])):
        try:
            providers.append(_provider(entry, districts))
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"provider #{index + 1} ({entry.get('name', '?')}): {exc}")
    catalogue = ProviderCatalogue(districts=districts, providers=tuple(providers))
    problems += _conflicts(catalogue)
    if require_full_coverage:
        problems += [f"no {kind.value} provider for district {d}" for kind, d in catalogue.gaps()]
    if problems:
        raise ConfigurationError(f"{source}: " + "; ".join(problems))
    return catalogue


def _provider(entry: Mapping[str, Any], area: Mapping[str, str]) -> ProviderConfig:
    name = str(entry["name"])
    kind = UtilityKind(entry["kind"])
    if not _NAME.match(name) or not name.startswith(f"{kind.value}."):
        raise ValueError(f"name must look like '{kind.value}.company-name'")
    listed = [str(d) for d in entry["districts"]]
    districts = tuple(area) if listed == [ALL_DISTRICTS] else tuple(listed)
    unknown = [d for d in districts if d not in area]
    if unknown or not districts:
        raise ValueError(f"districts {unknown or '[]'} are not in [area] districts")
    adapter = str(entry["adapter"])
    if not adapter:
        raise ValueError("adapter is empty")
    timeout = entry.get("timeout_s")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)):
        raise ValueError("timeout_s must be a number of seconds")
    if timeout is not None and timeout <= 0:
        raise ValueError("timeout_s must be positive")
    dedupes = entry.get("dedupes", True)
    if not isinstance(dedupes, bool):
        raise ValueError("dedupes must be true or false")
    return ProviderConfig(
        name=name,
        kind=kind,
        districts=districts,
        adapter=adapter,
        base_url=str(entry.get("base_url", "")),
        display_name=str(entry.get("display_name", "")),
        timeout_s=float(timeout) if timeout is not None else None,
        dedupes=dedupes,
    )


def _conflicts(catalogue: ProviderCatalogue) -> list[str]:
    problems: list[str] = []
    seen: dict[tuple[UtilityKind, str], str] = {}
    names: set[str] = set()
    for provider in catalogue.providers:
        if provider.name in names:
            problems.append(f"provider {provider.name} is listed twice")
        names.add(provider.name)
        for district in provider.districts:
            other = seen.setdefault((provider.kind, district), provider.name)
            if other != provider.name:
                problems.append(f"{provider.kind.value} in {district}: both {other} and {provider.name}")
    return problems
