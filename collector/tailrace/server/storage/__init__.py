"""Storage backends behind the `Store` protocol (see base.py)."""
