"""How the simulators draw faults (integrations/simulator.py): probabilities, counts, combinations,
reproducibility. No sockets: the draw is what decides, the HTTP pipeline only acts on it."""

from __future__ import annotations

import pytest
from aiohttp import web

from integrations.simulator import FaultMode, Reply, Simulator


class Echo(Simulator):
    name = "echo"

    def _setup_routes(self) -> None:
        self.route("GET", "/read", "read", self._answer, effectful=False)
        self.route("POST", "/write", "write", self._answer, effectful=True)

    async def _answer(self, request: web.Request) -> Reply:
        return Reply(200, {"ok": True})


def outcomes(sim: Simulator, n: int, operation: str = "read") -> list[str | None]:
    """The deciding fault's mode per request (None: answered normally)."""
    draws = [sim._draw_faults(operation) for _ in range(n)]
    return [d.outcome.mode.value if d.outcome is not None else None for d in draws]


def test_a_probabilistic_fault_hits_about_its_fraction() -> None:
    sim = Echo(seed=1)
    sim.set_fault("error", probability=0.1)
    hits = outcomes(sim, 1000).count("error")
    assert 60 <= hits <= 140
    assert sim.state()["faults"][0]["applied"] == hits


def test_the_same_seed_draws_the_same_requests() -> None:
    first, second, other = Echo(seed=42), Echo(seed=42), Echo(seed=43)
    for sim in (first, second, other):
        sim.set_fault("error", probability=0.1)
        sim.set_fault("drop", probability=0.02)
    assert outcomes(first, 500) == outcomes(second, 500)
    assert outcomes(first, 500) != outcomes(other, 1000)[:500]


def test_reset_starts_the_draws_again_from_the_seed() -> None:
    sim = Echo(seed=5)
    sim.set_fault("error", probability=0.3)
    before = outcomes(sim, 200)
    sim.reset()
    sim.set_fault("error", probability=0.3)
    assert outcomes(sim, 200) == before
    sim.reseed(6)
    sim.set_fault("error", probability=0.3)
    assert outcomes(sim, 200) != before


def test_latency_adds_up_and_combines_with_an_error() -> None:
    sim = Echo(seed=0)
    sim.set_fault("latency", latency_ms=50)
    sim.set_fault("latency", latency_ms=20, operations=["read"])
    sim.set_fault("error", status=502, count=1)
    hit = sim._draw_faults("read")
    assert hit.latency_s == pytest.approx(0.07)
    assert hit.outcome is not None and hit.outcome.mode is FaultMode.ERROR and hit.outcome.status == 502
    later = sim._draw_faults("write")
    assert later.latency_s == pytest.approx(0.05) and later.outcome is None  # the error was used up


def test_the_first_outcome_that_fires_decides_and_later_ones_are_not_spent() -> None:
    sim = Echo(seed=0)
    sim.set_fault("error", count=1)
    sim.set_fault("drop", count=1)
    assert outcomes(sim, 3) == ["error", "drop", None]


def test_count_limits_how_often_a_probabilistic_fault_applies() -> None:
    sim = Echo(seed=3)
    sim.set_fault("error", probability=0.5, count=5)
    assert outcomes(sim, 200).count("error") == 5
    assert sim.state()["faults"] == []


def test_operations_limit_a_probabilistic_fault() -> None:
    sim = Echo(seed=3)
    sim.set_fault("error", probability=1.0, operations=["write"])
    assert outcomes(sim, 10, "read") == [None] * 10
    assert outcomes(sim, 10, "write") == ["error"] * 10


def test_state_shows_the_new_fault_fields() -> None:
    sim = Echo()
    sim.set_fault("drop", probability=0.25, operations=["write"])
    assert sim.state()["faults"] == [
        {
            "mode": "drop",
            "count": None,
            "latency_ms": None,
            "status": 503,
            "operations": ["write"],
            "probability": 0.25,
            "applied": 0,
        }
    ]


@pytest.mark.parametrize("probability", [-0.1, 1.5])
def test_a_probability_outside_0_to_1_is_refused(probability: float) -> None:
    with pytest.raises(ValueError, match="probability"):
        Echo().set_fault("error", probability=probability)
