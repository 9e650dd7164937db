"""Offline trainers (importable; ``tricam train`` is their thin command line)."""
