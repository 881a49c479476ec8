"""Benchmarks and metrics behind `chatbot eval`: what we measure is what customers get."""
