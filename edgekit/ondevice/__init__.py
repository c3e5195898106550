"""Files that run on the target device without edgekit installed (``bench.py``: numpy + one runtime)."""
