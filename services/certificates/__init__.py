"""No-housing e-certificates (无房证明): issue, show (亮证), verify, revoke (docs/certificates.md).

Public to other domains: `housing_acquired`, which a registration that gives someone housing
calls in its own transaction, and the services the composition root builds.
"""

from services.certificates.issuance import (
    CertificatePolicy,
    CertificateService,
    CertificateView,
    Presentation,
    RevocationListView,
)
from services.certificates.purposes import Catalogue, CatalogueError
from services.certificates.revocation import file_license, housing_acquired, revoke_license
from services.certificates.verification import CertificateVerifier, Verification, VerifiedCertificate

__all__ = [
    "Catalogue",
    "CatalogueError",
    "CertificatePolicy",
    "CertificateService",
    "CertificateVerifier",
    "CertificateView",
    "Presentation",
    "RevocationListView",
    "Verification",
    "VerifiedCertificate",
    "file_license",
    "housing_acquired",
    "revoke_license",
]
