"""Appointments at any district office with the tax appointment (issue 11).

Empty until that issue; its outbox topics are declared in `topics.py`.
"""
