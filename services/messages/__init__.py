"""What a person is told: the in-app inbox and SMS through the outbox.

Public to other domains: `post_message` and the message kinds, and the `sms.send` topic with its
payload builders.
"""

from services.messages.inbox import GUARDIAN_QUERY, PROPERTY_CHANGE, post_message
from services.messages.sms import SMS_SEND, sms_to_person, sms_to_phone

__all__ = ["GUARDIAN_QUERY", "PROPERTY_CHANGE", "SMS_SEND", "post_message", "sms_to_person", "sms_to_phone"]
