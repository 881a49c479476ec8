"""Kestrel Assist: a self-hosted, grounded banking customer-service assistant."""

__version__ = "0.1.0"
