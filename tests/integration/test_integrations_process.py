"""The simulators as a separate process (`python -m integrations.simulators`) and on fixed ports."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import httpx
import pytest
from prometheus_client import CollectorRegistry

from integrations.errors import RequestRejected
from integrations.factory import SimulatorSuite, build_integrations
from integrations.testing import fast_settings

ROOT = Path(__file__).resolve().parents[2]
ID = "110105199003071239"


@pytest.mark.slow
async def test_simulators_run_as_a_separate_process(tmp_path: Path) -> None:
    people = tmp_path / "people.json"
    people.write_text(json.dumps({"people": [{"id_number": ID, "name": "张三"}], "guardianships": []}))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "integrations.simulators", "--port-base", "0", "--people", str(people),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=15)
        overrides = json.loads(line)
        assert set(overrides) == set(SimulatorSuite._SETTINGS_KEYS.values())
        settings = fast_settings().model_copy(update=overrides)
        async with aiohttp.ClientSession() as session, httpx.AsyncClient() as client:
            world = build_integrations(
                settings, session=session, http_client=client, metrics_registry=CollectorRegistry()
            )
            assert (await world.civil_registry.get_person(ID)).name == "张三"
            with pytest.raises(RequestRejected):
                await world.civil_registry.get_person("11010519491231002X")
            receipt = await world.sms.send("13800000000", "login_code", {"code": "9", "minutes": "5"}, "k-1")
            async with session.get(f"{overrides['sms_gateway_url']}/messages?phone=13800000000") as response:
                assert [m["message_id"] for m in await response.json()] == [receipt.message_id]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0


def _free_port_run(length: int) -> int:
    """A base port with `length` free ports after it (best effort)."""
    for _ in range(20):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + length >= 65535:
            continue
        sockets = []
        try:
            for port in range(base, base + length):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no run of free ports found")


async def test_fixed_base_port_assigns_ports_in_the_documented_order() -> None:
    base = _free_port_run(len(SimulatorSuite.ORDER))
    suite = await SimulatorSuite.start("127.0.0.1", base, settings=fast_settings())
    try:
        assert [sim.port for sim in suite.simulators()] == list(range(base, base + 7))
        assert suite.settings_overrides() == {
            "civil_registry_url": f"http://127.0.0.1:{base}",
            "tax_url": f"http://127.0.0.1:{base + 1}",
            "elicense_url": f"http://127.0.0.1:{base + 2}",
            "appointment_centre_url": f"http://127.0.0.1:{base + 3}",
            "utilities_simulator_url": f"http://127.0.0.1:{base + 4}",
            "banks_simulator_url": f"http://127.0.0.1:{base + 5}",
            "sms_gateway_url": f"http://127.0.0.1:{base + 6}",
        }
        with pytest.raises(OSError):  # a taken port fails loudly and leaves nothing running
            await SimulatorSuite.start("127.0.0.1", base, settings=fast_settings())
    finally:
        await suite.stop()
