"""Guardians reading a minor's property data: links verified by the civil registry and kept
current by its change feed (links.py, feed.py), and the alerts to the other guardian (alerts.py).

Nothing here is used by another domain; the API calls `links` and `feed`.
"""
