"""Input guards: PII redaction and input limits, applied before anything is stored or logged."""
