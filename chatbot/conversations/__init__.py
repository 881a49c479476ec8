"""A conversation's use cases: the customer turn (turns.py) and the handoff lifecycle (handoff.py)."""
