"""Who is calling: accounts, sign-in, tokens, the keys of an install.

Public to other domains: `Principal` (the verified caller). Sign-in itself is used by the API
only (services/identity/auth.py).
"""

from services.identity.tokens import Principal

__all__ = ["Principal"]
