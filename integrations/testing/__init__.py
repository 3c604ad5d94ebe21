"""Test doubles of the external systems, for services' and api's tests as well (no pytest here).

* Unit tier: in-memory fakes of every contract (`FakeCivilRegistry`, `FakeTax`, ...). They subclass
  the contract, so its shared work (timing, logging, error mapping) runs, and mirror the simulators'
  refusals, idempotency and faults (see `integrations.testing.fake`). No sockets, no sessions.
* Integration tier: `simulated_integrations()`, the simulators on ephemeral ports behind the real
  adapters:

      async with simulated_integrations(fast_settings()) as world:
          await world.integrations.tax.book_appointment(...)
          assert world.suite.tax.applied("book_appointment") == 1
"""

from integrations.testing.appointment_centre import FakeAppointmentCentre
from integrations.testing.banks import FakeBanks
from integrations.testing.civil_registry import FakeCivilRegistry
from integrations.testing.elicense import FakeElicense
from integrations.testing.fake import FakeSystem
from integrations.testing.simulated import SimulatedWorld, fast_settings, simulated_integrations
from integrations.testing.sms import FakeSms
from integrations.testing.tax import FakeTax
from integrations.testing.utilities import FakeUtilityProvider, fake_utilities

__all__ = [
    "FakeAppointmentCentre",
    "FakeBanks",
    "FakeCivilRegistry",
    "FakeElicense",
    "FakeSms",
    "FakeSystem",
    "FakeTax",
    "FakeUtilityProvider",
    "SimulatedWorld",
    "fake_utilities",
    "fast_settings",
    "simulated_integrations",
]
