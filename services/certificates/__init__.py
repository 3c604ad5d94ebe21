"""No-housing e-certificates (issue 10): issuance, the e-licence library, verification.

Empty until that issue; the outbox topics it will enqueue are declared in `topics.py`.
"""
