"""The integration API for mobile apps and partners (docs/integration-api.md).

- ``keys``: API keys (``kst_…``, stored as SHA-256, scoped, revocable) and the per-key identity
  secret that signs verified customer ids;
- ``auth``: the FastAPI dependencies that accept a key, and the ownership rule for conversations;
- ``pagination``: opaque cursors;
- ``idempotency``: ``Idempotency-Key`` on POSTs, claimed with an INSERT so several processes agree;
- ``webhooks``: the signed, retried outbox of conversation events, and ``verify_signature``;
- ``openapi``: the error model every route documents.
"""
