"""What every page's header needs to know about the person looking."""

from .permissions import can_create_jobs


def people(request) -> dict:
    user = getattr(request, "user", None)
    return {"can_create_jobs": bool(user is not None and can_create_jobs(user))}
