"""Pure rules of registration cases and transfers: the case state machine and the shares of new
holders. No database: a wrong rule here would be written to the register by every clerk."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import pytest

from services.errors import ValidationFailed
from services.registry.changes import CASE_KIND_NAMES, CASE_STATE_NAMES, CASE_TRANSITIONS
from services.registry.changes.transfers import _shares

# --- the case state machine ------------------------------------------------------------------------

FINAL = {"not_accepted", "refused", "issued"}


def _reachable_from(state: str) -> set[str]:
    seen, todo = {state}, [state]
    while todo:
        for nxt in CASE_TRANSITIONS.get(todo.pop(), frozenset()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_a_case_runs_applied_accepted_reviewing_registered_issued():
    path = ["applied", "accepted", "reviewing", "registered", "issued"]
    for state, nxt in pairwise(path):
        assert nxt in CASE_TRANSITIONS[state]


def test_a_case_can_stop_only_at_acceptance_or_review():
    assert CASE_TRANSITIONS["applied"] == {"accepted", "not_accepted"}
    assert CASE_TRANSITIONS["reviewing"] == {"registered", "refused"}
    assert CASE_TRANSITIONS["accepted"] == {"reviewing"}
    assert CASE_TRANSITIONS["registered"] == {"issued"}


def test_the_final_states_are_exactly_those_with_no_move():
    every_state = set(CASE_TRANSITIONS) | set().union(*CASE_TRANSITIONS.values())
    assert every_state - set(CASE_TRANSITIONS) == FINAL
    assert all(CASE_TRANSITIONS.get(state, frozenset()) == frozenset() for state in FINAL)


def test_no_state_moves_back_or_skips_ahead():
    for state, moves in CASE_TRANSITIONS.items():
        assert state not in moves
        for nxt in moves:
            assert state not in _reachable_from(nxt), f"{state} -> {nxt} leads back to {state}"
    assert "issued" not in CASE_TRANSITIONS["applied"] | CASE_TRANSITIONS["accepted"]


def test_every_state_is_reachable_from_applied_and_has_a_name():
    assert _reachable_from("applied") == set(CASE_STATE_NAMES)
    assert {"first", "transfer", "mortgage", "seizure", "objection"} <= set(CASE_KIND_NAMES)


# --- shares of new holders -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "holders",
    [
        [(1, 1)],
        [(1, "1")],
        [(1, Decimal("1.00"))],
        [(1, "0.5"), (2, "0.5")],
        [(1, "0.3333"), (2, "0.3333"), (3, "0.3334")],
        [(i, "0.1") for i in range(1, 11)],  # ten tenths add up exactly: decimals, not floats
        [("7", "0.25"), (8, Decimal("0.75"))],
    ],
)
def test_positive_shares_of_distinct_holders_that_add_up_to_one_are_accepted(holders):
    shares = _shares(holders)
    assert [pid for pid, _ in shares] == [int(pid) for pid, _ in holders]
    assert all(isinstance(s, Decimal) for _, s in shares)
    assert sum(s for _, s in shares) == 1


def test_shares_keep_their_order_and_precision():
    assert _shares([(2, "0.60"), (1, "0.40")]) == [(2, Decimal("0.60")), (1, Decimal("0.40"))]


@pytest.mark.parametrize(
    "holders",
    [
        [],
        [(1, "0.5")],  # short of one
        [(1, "0.5"), (2, "0.6")],  # more than one
        [(1, "0.3333"), (2, "0.3333"), (3, "0.3333")],  # thirds rounded do not make a whole
        [(1, "1"), (2, "0")],  # a holder with nothing
        [(1, "1.5"), (2, "-0.5")],  # adds up, but a share is negative
        [(1, "0.5"), (1, "0.5")],  # the same person twice
        [(1, "0.5"), ("1", "0.5")],  # the same person, spelt as a string
    ],
)
def test_shares_that_do_not_make_one_whole_among_distinct_holders_are_refused(holders):
    with pytest.raises(ValidationFailed) as refused:
        _shares(holders)
    assert refused.value.detail_en == "New holders must be distinct, with positive shares that add up to 1"


@pytest.mark.parametrize(
    "holders",
    [
        [(1, "half")],
        [(1, "")],
        [(1, "1/2"), (2, "1/2")],
        [("one", "1")],
        [(1, None)],
    ],
)
def test_a_share_or_holder_that_is_not_a_number_is_refused(holders):
    with pytest.raises(ValidationFailed) as refused:
        _shares(holders)
    assert refused.value.detail_en == "A share is not a number"
