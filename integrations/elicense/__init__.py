"""Electronic licence library (电子证照库): where issued certificates are filed."""

from integrations.elicense.base import ElicenseStore, LicenseRecord, LicenseStatus, StoredLicense

__all__ = ["ElicenseStore", "LicenseRecord", "LicenseStatus", "StoredLicense"]
