"""External systems behind contracts: real HTTP adapters and local simulators.

Never imports `services`, `api` or `sanic`. See docs/integrations.md.
"""
