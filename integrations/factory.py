"""Builds the adapters from settings, and starts the simulators that stand in for the real systems.

The composition root owns the aiohttp session and the httpx client (opened in a listener, closed
on stop); nothing here opens a connection at import time.

Simulator ports with a fixed base port, in this order (documented in docs/integrations.md):
base+0 civil_registry, +1 tax, +2 elicense, +3 appointment_centre, +4 utilities, +5 banks, +6 sms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
import httpx
from prometheus_client import CollectorRegistry

from config.settings import ConfigurationError, Settings
from integrations.appointment_centre.base import AppointmentCentre
from integrations.appointment_centre.http import HttpAppointmentCentre
from integrations.appointment_centre.simulator import AppointmentCentreSimulator
from integrations.banks import http as bank_http
from integrations.banks.base import CallbackEndpoint
from integrations.banks.config import BankConfig, load_banks
from integrations.banks.router import BankDirectory, BankRouter
from integrations.banks.simulator import BankCallbackSimulator
from integrations.base import HttpAdapter, RetryPolicy, integration_metrics
from integrations.civil_registry.base import CivilRegistry
from integrations.civil_registry.http import HttpCivilRegistry
from integrations.civil_registry.simulator import CivilRegistrySimulator
from integrations.elicense.base import ElicenseStore
from integrations.elicense.http import HttpElicenseStore
from integrations.elicense.simulator import ElicenseSimulator
from integrations.simulator import Simulator
from integrations.sms import http as sms_http
from integrations.sms.base import SmsGateway
from integrations.sms.simulator import SmsGatewaySimulator
from integrations.tax.base import TaxSystem
from integrations.tax.http import HttpTaxSystem
from integrations.tax.simulator import TaxSimulator
from integrations.utilities import http as utility_http
from integrations.utilities.base import UtilityProvider
from integrations.utilities.config import ProviderCatalogue, load_providers
from integrations.utilities.router import UtilityRouter
from integrations.utilities.simulator import UtilitiesSimulator

DEFAULT_ADAPTER = "http-json-v1"

# Adapter name -> class, per system. Settings.external_adapters picks one ("http-json-v1" if unset).
ADAPTERS: dict[str, Mapping[str, type[HttpAdapter]]] = {
    "civil_registry": {"http-json-v1": HttpCivilRegistry},
    "tax": {"http-json-v1": HttpTaxSystem},
    "elicense": {"http-json-v1": HttpElicenseStore},
    "appointment_centre": {"http-json-v1": HttpAppointmentCentre},
}


@dataclass(frozen=True)
class Integrations:
    civil_registry: CivilRegistry
    tax: TaxSystem
    elicense: ElicenseStore
    appointment_centre: AppointmentCentre
    utilities: UtilityRouter
    banks: BankRouter
    sms: SmsGateway


def build_integrations(
    settings: Settings,
    *,
    session: aiohttp.ClientSession,
    http_client: httpx.AsyncClient,
    metrics_registry: CollectorRegistry | None = None,
    catalogue: ProviderCatalogue | None = None,
    banks: Iterable[BankConfig] | None = None,
    bank_directory: BankDirectory | None = None,
) -> Integrations:
    """Raises ConfigurationError for a missing URL or an unknown adapter name: refuse to start.

    With `bank_directory` (the service: banks are rows of the database), each bank callback looks
    its bank up when it is sent; without it, the senders are built from `banks` (config/banks.toml)."""
    metrics = integration_metrics(metrics_registry)
    retry = RetryPolicy(
        attempts=settings.external_retries + 1,
        initial_backoff_s=settings.external_backoff_initial_s,
        max_backoff_s=settings.external_backoff_max_s,
        jitter_s=settings.external_backoff_initial_s / 2,
    )
    common: dict[str, Any] = {
        "session": session,
        "timeout_s": settings.external_timeout_s,
        "retry": retry,
        "metrics": metrics,
    }

    def core(system: str, url: str) -> Any:
        return _adapter(ADAPTERS[system], _adapter_name(settings, system), system)(
            base_url=_require_url(url, system), **common
        )

    catalogue = catalogue if catalogue is not None else load_providers(settings.utility_providers_file)
    providers: dict[str, UtilityProvider] = {}
    for config in catalogue.providers:
        cls = _adapter(utility_http.ADAPTERS, config.adapter, config.name)
        base_url = config.base_url or _simulated(settings.utilities_simulator_url, config.name)
        providers[config.name] = cls(
            name=config.name,
            kind=config.kind,
            dedupes=config.dedupes,
            base_url=base_url,
            **{**common, "timeout_s": config.timeout_s or settings.external_timeout_s},
        )

    def bank_sender(endpoint: CallbackEndpoint) -> bank_http.SignedJsonCallback:
        sender_cls = _adapter(bank_http.ADAPTERS, endpoint.adapter, f"bank {endpoint.bank_code}")
        url = endpoint.url or _simulated(settings.banks_simulator_url, f"{endpoint.bank_code}/callback")
        return sender_cls(
            endpoint,
            session=session,
            timeout_s=settings.external_timeout_s,
            retry=retry,
            callback_url=url,
            default_mac=bank_http.profile_mac(settings.crypto_profile),
        )

    senders = {}
    if bank_directory is None:
        for bank in banks if banks is not None else load_banks(settings.banks_file):
            senders[bank.code] = bank_sender(bank_http.endpoint_of(bank))
        bank_router = BankRouter(senders, metrics=metrics)
    else:
        bank_router = BankRouter(directory=bank_directory, make_sender=bank_sender, metrics=metrics)

    sms_cls = _adapter(sms_http.ADAPTERS, _adapter_name(settings, "sms"), "sms")
    return Integrations(
        civil_registry=core("civil_registry", settings.civil_registry_url),
        tax=core("tax", settings.tax_url),
        elicense=core("elicense", settings.elicense_url),
        appointment_centre=core("appointment_centre", settings.appointment_centre_url),
        utilities=UtilityRouter(catalogue, providers, metrics=metrics),
        banks=bank_router,
        sms=sms_cls(
            base_url=_require_url(settings.sms_gateway_url, "sms"),
            api_key=settings.sms_gateway_api_key.get_secret_value(),
            client=http_client,
            timeout_s=settings.external_timeout_s,
            retry=retry,
            metrics=metrics,
        ),
    )


def _adapter_name(settings: Settings, system: str) -> str:
    return settings.external_adapters.get(system, DEFAULT_ADAPTER)


def _adapter(registry: Mapping[str, Any], name: str, what: str) -> Any:
    try:
        return registry[name]
    except KeyError:
        raise ConfigurationError(f"unknown adapter {name!r} for {what}; known: {sorted(registry)}") from None


def _require_url(url: str, system: str) -> str:
    if not url:
        raise ConfigurationError(
            f"no URL configured for {system}: set it, or start the simulators and merge "
            "SimulatorSuite.settings_overrides() into the settings"
        )
    return url


def _simulated(simulator_url: str, path: str) -> str:
    return f"{_require_url(simulator_url, 'the simulator of ' + path).rstrip('/')}/{path}"


# --- simulators ------------------------------------------------------------------------------------


@dataclass
class SimulatorSuite:
    """Every simulator, started in-process on the current event loop."""

    civil_registry: CivilRegistrySimulator
    tax: TaxSimulator
    elicense: ElicenseSimulator
    appointment_centre: AppointmentCentreSimulator
    utilities: UtilitiesSimulator
    banks: BankCallbackSimulator
    sms: SmsGatewaySimulator

    # Port order: base_port + index. Do not reorder: the demo documents these ports.
    ORDER: ClassVar[tuple[str, ...]] = (
        "civil_registry",
        "tax",
        "elicense",
        "appointment_centre",
        "utilities",
        "banks",
        "sms",
    )
    _SETTINGS_KEYS: ClassVar[dict[str, str]] = {
        "civil_registry": "civil_registry_url",
        "tax": "tax_url",
        "elicense": "elicense_url",
        "appointment_centre": "appointment_centre_url",
        "utilities": "utilities_simulator_url",
        "banks": "banks_simulator_url",
        "sms": "sms_gateway_url",
    }

    @classmethod
    def create(
        cls,
        *,
        settings: Settings | None = None,
        banks: Iterable[BankConfig] | None = None,
        catalogue: ProviderCatalogue | None = None,
        sms_api_key: str | None = None,
        utilities_processing_s: float = 0.0,
        seed: int | None = None,
    ) -> SimulatorSuite:
        """Build (not start) the simulators; bank secrets, provider names and the SMS key come
        from the arguments, else from `settings`, else from the default settings. `seed` makes the
        utilities simulator's probabilistic faults reproducible; `utilities_processing_s` is how
        long its transfers take to complete (0: at once)."""
        settings = settings if settings is not None else Settings()
        banks = list(banks) if banks is not None else load_banks(settings.banks_file)
        catalogue = catalogue if catalogue is not None else load_providers(settings.utility_providers_file)
        return cls(
            civil_registry=CivilRegistrySimulator(),
            tax=TaxSimulator(),
            elicense=ElicenseSimulator(),
            appointment_centre=AppointmentCentreSimulator(),
            utilities=UtilitiesSimulator(
                providers=[p.name for p in catalogue.providers],
                non_deduping=[p.name for p in catalogue.providers if not p.dedupes],
                processing_s=utilities_processing_s,
                seed=seed,
            ),
            banks=BankCallbackSimulator(banks, default_mac=bank_http.profile_mac(settings.crypto_profile)),
            sms=SmsGatewaySimulator(
                api_key=sms_api_key
                if sms_api_key is not None
                else settings.sms_gateway_api_key.get_secret_value()
            ),
        )

    @classmethod
    async def start(
        cls,
        host: str = "127.0.0.1",
        base_port: int = 0,
        *,
        settings: Settings | None = None,
        banks: Iterable[BankConfig] | None = None,
        catalogue: ProviderCatalogue | None = None,
        sms_api_key: str | None = None,
        utilities_processing_s: float = 0.0,
        seed: int | None = None,
    ) -> SimulatorSuite:
        """Start all simulators: base_port 0 = ephemeral ports, else base_port + index in ORDER."""
        suite = cls.create(
            settings=settings,
            banks=banks,
            catalogue=catalogue,
            sms_api_key=sms_api_key,
            utilities_processing_s=utilities_processing_s,
            seed=seed,
        )
        await suite.start_all(host, base_port)
        return suite

    async def start_all(self, host: str = "127.0.0.1", base_port: int = 0) -> None:
        try:
            for index, simulator in enumerate(self.simulators()):
                await simulator.start(host, base_port + index if base_port else 0)
        except BaseException:
            await self.stop()
            raise

    def simulators(self) -> list[Simulator]:
        return [getattr(self, name) for name in self.ORDER]

    def urls(self) -> dict[str, str]:
        return {name: getattr(self, name).base_url for name in self.ORDER}

    def settings_overrides(self) -> dict[str, str]:
        """Settings field -> URL, to merge with `settings.model_copy(update=...)` or Settings(**...)."""
        return {self._SETTINGS_KEYS[name]: url for name, url in self.urls().items()}

    def reset(self) -> None:
        for simulator in self.simulators():
            simulator.reset()

    async def stop(self) -> None:
        for simulator in reversed(self.simulators()):
            await simulator.stop()
