"""The branch the master owns, read through the core's breezy reader (never a working tree)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from autotua.tree import BzrTree, TreeError, open_branch, resolve_revision

__all__ = ["TreeError", "branch_path", "open_tree", "tip"]


def branch_path() -> Path:
    return Path(settings.AUTOTUA_TREE)


def open_tree(revision: str | int | None = None) -> BzrTree:
    """The tree at ``revision`` (a revno, a revision id, or None for the tip)."""
    return BzrTree(branch_path(), revision)


def tip() -> tuple[str, int | None]:
    """(revision id, revno) of the branch's last revision."""
    return resolve_revision(open_branch(branch_path()), None)
