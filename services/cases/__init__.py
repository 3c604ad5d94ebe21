"""Registration cases: transfers that carry the utility account transfers (issue 12); first and
cancellation registration and bank filings build on the same case model.

Public to other domains and the API: `CaseService` with its inputs and views, and the outbox topics
(`topics.py`) with their handlers (`deliver_transfer`, `check_transfer`).
"""

from services.cases.kinds import CaseKind
from services.cases.numbers import case_number, certificate_number
from services.cases.transfers import (
    BANK_CONSENT,
    CANCEL_IN_CASE,
    BuyerInput,
    TransferApplication,
    UtilityChoice,
)
from services.cases.utilities import check_transfer, deliver_transfer
from services.cases.views import CaseSummary, CaseView
from services.cases.workflow import Actor, CasePolicy, CaseService

__all__ = [
    "BANK_CONSENT",
    "CANCEL_IN_CASE",
    "Actor",
    "BuyerInput",
    "CaseKind",
    "CasePolicy",
    "CaseService",
    "CaseSummary",
    "CaseView",
    "TransferApplication",
    "UtilityChoice",
    "case_number",
    "certificate_number",
    "check_transfer",
    "deliver_transfer",
]
