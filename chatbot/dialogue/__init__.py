"""The engine: one path from a customer's message to a grounded, cited answer."""
