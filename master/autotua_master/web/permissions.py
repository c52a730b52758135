"""Who may do what in the web UI; the same rules as the API (api/permissions.py).

Everyone, anonymous included, reads jobs, slaves and the tree. Maintainers (users with a recorded key)
and staff create jobs; a job's owner and staff re-validate and cancel it; a slave's owner and staff
see its private facts, make it a new token and revoke it; any logged-in person adds or adopts slaves.
"""

from __future__ import annotations


def can_create_jobs(user) -> bool:
    return bool(user.is_authenticated and (user.is_staff or hasattr(user, "maintainer")))


def can_change_job(user, job) -> bool:
    return job.can_change(user)


def can_manage_slave(user, slave) -> bool:
    return slave.can_manage(user)


def can_add_slaves(user) -> bool:
    return bool(user.is_authenticated)
