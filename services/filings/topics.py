"""Outbox topics of bank filings: the callback that tells a bank where its filing stands."""

BANK_NOTIFY_FILING = "banks.notify_filing"
