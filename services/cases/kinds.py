"""What differs between kinds of registration: the rules a move must pass and what registering
writes to the register. The case workflow (services/cases/workflow.py) is the same for all; each
kind (transfer, first registration, cancellation, mortgage filings) plugs in one `CaseKind`.

Both hooks run inside the move's transaction (`tx`), before the move's event and notices are
written, so a rule that fails or a registration that cannot be made rolls the whole move back.
"""

from __future__ import annotations

from typing import Protocol

from services.registry.changes import RegisterTransaction
from services.registry.models import RegistrationCase


class CaseKind(Protocol):
    name: str  # RegistrationCase.kind

    async def check_move(self, tx: RegisterTransaction, case: RegistrationCase, to_state: str) -> None:
        """Raise a DomainError when the case may not make this move (e.g. accept without tax answer)."""

    async def register(self, tx: RegisterTransaction, case: RegistrationCase) -> str | None:
        """登簿: write the case's change to the register; the certificate number it produced."""
