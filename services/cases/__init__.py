"""Registration cases: transfers that carry the utility account transfers (issue 12), first
registration and cancellation registration (issue 13); bank filings build on the same case model.

Public to other domains and the API: `CaseService` with its inputs and views, and the outbox topics
(`topics.py`) with their handlers (`deliver_transfer`, `check_transfer`).
"""

from services.cases.cancellations import REASONS as CANCELLATION_REASONS
from services.cases.cancellations import CancellationApplication
from services.cases.first import UNIT_USES, FirstRegistrationApplication, UnitInput
from services.cases.kinds import CaseKind
from services.cases.mortgage_filings import FilingCase, accept_filing, filing_kinds
from services.cases.numbers import case_number, certificate_number
from services.cases.transfers import (
    BANK_CONSENT,
    CANCEL_IN_CASE,
    BuyerInput,
    TransferApplication,
    UtilityChoice,
)
from services.cases.utilities import check_transfer, deliver_transfer
from services.cases.views import CaseSummary, CaseView, OrganisationRight
from services.cases.workflow import Actor, CasePolicy, CaseService

__all__ = [
    "BANK_CONSENT",
    "CANCELLATION_REASONS",
    "CANCEL_IN_CASE",
    "UNIT_USES",
    "Actor",
    "BuyerInput",
    "CancellationApplication",
    "CaseKind",
    "CasePolicy",
    "CaseService",
    "CaseSummary",
    "CaseView",
    "FilingCase",
    "FirstRegistrationApplication",
    "OrganisationRight",
    "TransferApplication",
    "UnitInput",
    "UtilityChoice",
    "accept_filing",
    "case_number",
    "certificate_number",
    "check_transfer",
    "deliver_transfer",
    "filing_kinds",
]
