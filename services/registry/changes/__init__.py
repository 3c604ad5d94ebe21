"""Changes to the register, each with its alerts, in one transaction, split by what they change
(mortgages, encumbrances, transfers, rights that begin or end, cases); the shared sequence is in _common.py.

Every function here changes the register and, in the same transaction, writes for every
person holding the touched right an in-app message and an SMS through the outbox (template
`property_alert`): a holder learns of a mortgage, seizure or transfer they did not make without
signing up for anything. Once the transaction has committed, the cached property lists of those
persons are invalidated (services/registry/cache.py explains why after, and why that suffices).

Features that change the register (clerks' registration, banks' mortgage filings) call these
functions rather than writing the models themselves, or they lose the alerts and serve stale lists.
State changes are conditional updates on the state read (`WHERE status = 'active'`), so two
concurrent changes to the same entry cannot both succeed.
"""

from services.registry.changes._common import (
    ALERT_TEMPLATE,
    CASE_KIND_NAMES,
    CASE_STATE_NAMES,
    CASE_TRANSITIONS,
    DEFAULT_HOTLINE,
    RegisterTransaction,
    register_transaction,
)
from services.registry.changes.cases import advance_case, start_case
from services.registry.changes.encumbrances import lift_encumbrance, register_encumbrance
from services.registry.changes.mortgages import cancel_mortgage, change_mortgage, register_mortgage
from services.registry.changes.rights import NewUnit, end_right, register_first
from services.registry.changes.transfers import register_transfer

__all__ = [
    "ALERT_TEMPLATE",
    "CASE_KIND_NAMES",
    "CASE_STATE_NAMES",
    "CASE_TRANSITIONS",
    "DEFAULT_HOTLINE",
    "NewUnit",
    "RegisterTransaction",
    "advance_case",
    "cancel_mortgage",
    "change_mortgage",
    "end_right",
    "lift_encumbrance",
    "register_encumbrance",
    "register_first",
    "register_mortgage",
    "register_transaction",
    "register_transfer",
    "start_case",
]
