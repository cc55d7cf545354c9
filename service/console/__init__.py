"""The internal operations console (python -m service console)."""
