"""The log filter masks ID numbers and mainland mobile numbers wherever a record carries them."""

from __future__ import annotations

import logging

from api.observability import _ContextFilter, mask_personal_numbers


def test_id_numbers_and_mobile_numbers_are_masked_but_other_numbers_are_not():
    text = "id 11010519491231002X, phone 13900000001, order 139000000012, unit 310115001001"
    assert mask_personal_numbers(text) == (
        "id 1101**********002X, phone 139****0001, order 139000000012, unit 310115001001"
    )


def test_the_filter_masks_the_message_its_arguments_and_extra_fields():
    record = logging.LogRecord("x", logging.INFO, "p", 1, "to %s (%s)", ("13812345678", 3), None)
    record.phone = "13812345678"
    record.id_number = "110105199003071239"
    assert _ContextFilter().filter(record)
    assert record.getMessage() == "to 138****5678 (3)"
    assert (record.phone, record.id_number) == ("138****5678", "1101**********1239")
