"""Tushare Pro as a source: its exports read natively, its HTTP API fetched month by month (docs/INTERFACES.md)."""
