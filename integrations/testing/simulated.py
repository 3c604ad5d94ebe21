"""The integration tier's world: every simulator on an ephemeral port, behind the real adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from prometheus_client import CollectorRegistry

from config.settings import Settings
from integrations.factory import Integrations, SimulatorSuite, build_integrations


def fast_settings(**overrides: Any) -> Settings:
    """Short timeouts and backoff so fault tests finish in well under a second each."""
    values: dict[str, Any] = {
        "external_timeout_s": 0.4,
        "external_retries": 2,
        "external_backoff_initial_s": 0.01,
        "external_backoff_max_s": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class SimulatedWorld:
    suite: SimulatorSuite
    integrations: Integrations
    settings: Settings
    metrics_registry: CollectorRegistry


@asynccontextmanager
async def simulated_integrations(
    settings: Settings | None = None, *, host: str = "127.0.0.1"
) -> AsyncIterator[SimulatedWorld]:
    settings = settings if settings is not None else fast_settings()
    suite = await SimulatorSuite.start(host, 0, settings=settings)
    try:
        settings = settings.model_copy(update=suite.settings_overrides())
        registry = CollectorRegistry()
        async with aiohttp.ClientSession() as session, httpx.AsyncClient() as client:
            yield SimulatedWorld(
                suite=suite,
                integrations=build_integrations(
                    settings, session=session, http_client=client, metrics_registry=registry
                ),
                settings=settings,
                metrics_registry=registry,
            )
    finally:
        await suite.stop()
