"""Registration cases: transfers with utility account transfers (issue 12), first and
cancellation registration (issue 13).

Empty until those issues; the outbox topics a transfer case enqueues are declared in `topics.py`.
"""
