"""Human handoff: agent accounts and tokens, the conversation lifecycle, live delivery, suggestions, analytics."""
