"""The jobs app's signals: how the apps above it (groups) hear of a job's change without the jobs
app importing them (tests/master/test_imports.py keeps the apps layered)."""

from django.dispatch import Signal

#: a job reached a final state (``job``: under its row lock, inside the transaction that ended it)
job_ended = Signal()
