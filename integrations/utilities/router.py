"""Picks the utility provider for a property's district."""

from __future__ import annotations

from collections.abc import Mapping

from integrations.base import IntegrationMetrics, integration_metrics
from integrations.errors import AdapterNotConfigured
from integrations.utilities.base import UtilityKind, UtilityProvider
from integrations.utilities.config import ProviderCatalogue


class UtilityRouter:
    system = "utilities"

    def __init__(
        self,
        catalogue: ProviderCatalogue,
        providers: Mapping[str, UtilityProvider],
        *,
        metrics: IntegrationMetrics | None = None,
    ) -> None:
        self.catalogue = catalogue
        self._providers = dict(providers)
        self._serving = {key: config.name for key, config in catalogue.serving().items()}
        self._metrics = metrics if metrics is not None else integration_metrics()

    def provider_for(self, kind: UtilityKind | str, district_code: str) -> UtilityProvider:
        """Raises AdapterNotConfigured when no provider serves that kind in that district."""
        try:
            wanted = UtilityKind(kind)
        except ValueError:
            wanted = None
        name = self._serving.get((wanted, district_code)) if wanted is not None else None
        provider = self._providers.get(name) if name is not None else None
        if provider is None:
            self._metrics.observe(self.system, "provider_for", AdapterNotConfigured.outcome, 0.0)
            raise AdapterNotConfigured(
                f"no {kind} provider configured for district {district_code}",
                system=self.system,
                operation="provider_for",
            )
        return provider

    def providers_for_district(self, district_code: str) -> dict[UtilityKind, UtilityProvider]:
        """Every kind's provider for a district; raises AdapterNotConfigured on the first gap."""
        return {kind: self.provider_for(kind, district_code) for kind in UtilityKind}

    def provider(self, name: str) -> UtilityProvider:
        try:
            return self._providers[name]
        except KeyError:
            raise AdapterNotConfigured(
                f"no utility provider named {name}", system=self.system, operation="provider"
            ) from None

    @property
    def providers(self) -> Mapping[str, UtilityProvider]:
        return dict(self._providers)
