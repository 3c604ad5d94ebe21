"""SMS gateway: sign-in codes and alerts to citizens' phones."""

from integrations.sms.base import SmsGateway, SmsReceipt

__all__ = ["SmsGateway", "SmsReceipt"]
