"""Run every simulator as its own process: `python -m integrations.simulators --port-base 8810`.

Prints one JSON line with the settings overrides (e.g. {"civil_registry_url": ...}) so a test or a
script in another process can read the URLs, then serves until Ctrl-C or SIGTERM. With
`--port-base 0` the ports are ephemeral; otherwise they follow SimulatorSuite.ORDER.
`--people FILE` loads the civil registry from a JSON file shaped like `PUT /_sim/data`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

from config.settings import load_settings
from integrations.banks.config import load_banks
from integrations.civil_registry.simulator import SimPerson
from integrations.factory import SimulatorSuite
from integrations.utilities.config import load_providers


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    settings = load_settings()
    parser = argparse.ArgumentParser(prog="python -m integrations.simulators", description=__doc__)
    parser.add_argument("--host", default=settings.simulator_host)
    parser.add_argument("--port-base", type=int, default=settings.simulator_base_port)
    parser.add_argument("--providers-file", type=Path, default=settings.utility_providers_file)
    parser.add_argument("--banks-file", type=Path, default=settings.banks_file)
    parser.add_argument("--sms-api-key", default=settings.sms_gateway_api_key.get_secret_value())
    parser.add_argument("--people", type=Path, help="JSON {people: [...], guardianships: [...]}")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    suite = await SimulatorSuite.start(
        args.host,
        args.port_base,
        banks=load_banks(args.banks_file),
        catalogue=load_providers(args.providers_file),
        sms_api_key=args.sms_api_key,
    )
    try:
        if args.people:
            data = json.loads(args.people.read_text(encoding="utf-8"))
            suite.civil_registry.load(
                [SimPerson.from_mapping(p) for p in data.get("people", [])],
                [
                    (g["guardian_id_number"], g["ward_id_number"], g["relation"])
                    for g in data.get("guardianships", [])
                ],
            )
        # Handlers first: whoever reads the line below may send SIGTERM at once.
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stopping.set)
        print(json.dumps(suite.settings_overrides()), flush=True)
        for name, url in suite.urls().items():
            print(f"# {name:<20} {url}", file=sys.stderr, flush=True)
        await stopping.wait()
    finally:
        await suite.stop()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(_arguments(argv)))


if __name__ == "__main__":
    main()
