"""No-housing e-certificates (无房证明): signing keys, token format, QR and PDF, offline checks.

Pure code: no database, no Sanic. `tokens` (compact JWS, EdDSA), `keys` (keyring, rotation,
JWK Set), `links` (verification URL, reading a scan), `offline` (verdicts from published keys
and a signed revocation list; `python -m certificates verify`), `qr`, `fonts`, `pdf`.
"""
