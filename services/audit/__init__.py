"""The access log: every read of a person's data, hash-chained (services/audit/log.py).

Public to other domains: recording a read and what a reader is.
"""

from services.audit.log import (
    HASH_SWITCH,
    PROPERTY_DETAIL,
    PROPERTY_LIST,
    PURPOSE_GUARDIAN,
    PURPOSE_SELF,
    SELF_DISPLAY,
    Reader,
    access_log_for,
    append_hash_switch,
    reader_for,
    record_access,
)
from services.audit.models import AccessLogItem, AccessLogPage

__all__ = [
    "HASH_SWITCH",
    "PROPERTY_DETAIL",
    "PROPERTY_LIST",
    "PURPOSE_GUARDIAN",
    "PURPOSE_SELF",
    "SELF_DISPLAY",
    "AccessLogItem",
    "AccessLogPage",
    "Reader",
    "access_log_for",
    "append_hash_switch",
    "reader_for",
    "record_access",
]
