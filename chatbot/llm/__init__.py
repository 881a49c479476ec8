"""The generator: weights from disk, device choice, and the batching generation worker."""
