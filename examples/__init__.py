"""Runnable trainings, one per model: ``python -m examples.<name>``."""
