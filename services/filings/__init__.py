"""Mortgage filings by banks without a visit (issue 14).

Empty until that issue; its outbox topic is declared in `topics.py`.
"""
