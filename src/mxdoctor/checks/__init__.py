"""Checks: one module per family; each finding code is declared beside the check that emits it."""
