"""Permissions: active slaves on slave endpoints; owners and staff change jobs, everyone reads."""

from __future__ import annotations

from rest_framework import permissions

from autotua_master.slaves.models import SlaveState

from .authentication import SlaveUser


class IsSlave(permissions.BasePermission):
    """Any slave that authenticated, pending or revoked included (``GET slaves/me``)."""

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, SlaveUser)


class IsActiveSlave(IsSlave):
    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        state = request.user.slave.state
        if state == SlaveState.PENDING:
            self.message = f"slave {request.user.slave} is pending: staff must approve it first"
        elif state == SlaveState.REVOKED:
            self.message = f"slave {request.user.slave} is revoked"
        return state == SlaveState.ACTIVE


class CanChangeJob(permissions.BasePermission):
    """Read for all; create and rerun for maintainers and staff; change (re-validate, cancel, delete) for
    the job's owner and staff."""

    message = "only the job's owner or staff may change it"

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        user = request.user
        if not (user and user.is_authenticated):
            return False
        action = getattr(view, "action", None)
        if action in ("create", "rerun") and not (user.is_staff or hasattr(user, "maintainer")):
            self.message = f"only maintainers (users with a recorded key) and staff may {action} jobs"
            return False
        return True

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in permissions.SAFE_METHODS or getattr(view, "action", None) == "rerun":
            return True  # a rerun is a new job of the caller's, made like any other
        return obj.can_change(request.user)


class CanChangeGroup(CanChangeJob):
    """As for jobs, but a group's rerun adds jobs to the group: its owner's and staff's alone (a
    maintainer reruns someone else's job as a new job of their own; a group they would have to copy)."""

    message = "only the group's owner or staff may change it"

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return obj.can_change(request.user)
