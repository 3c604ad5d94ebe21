"""The inbound Idempotency-Key store: any write route can run at most once per caller and key."""
