"""Slaves (volunteer machines, each with its own token) and their runs (a job held under a lease)."""
