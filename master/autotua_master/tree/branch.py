"""The branch the master owns, read through the core's breezy reader (never a working tree)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from autotua.tree import BzrTree, TreeError, open_branch, resolve_revision

__all__ = ["TreeError", "branch_path", "open_tree", "tip"]


def branch_path() -> Path:
    return Path(settings.AUTOTUA_TREE)


#: how messages name the master's branch (never by its path on the server)
LABEL = "the tree"


def open_tree(revision: str | int | None = None) -> BzrTree:
    """The tree at ``revision`` (a revno, a revision id, or None for the tip). A revision the
    repository holds but the branch's history does not (a push the master refused left it there) is
    as unknown as one it never had."""
    tree = BzrTree(branch_path(), revision, label=LABEL)
    if tree.revno is None:
        b = tree.branch
        with b.lock_read():
            known = b.repository.get_graph().is_ancestor(tree.revision_id.encode(), b.last_revision())
        if not known:
            tree.close()
            raise TreeError(f"{LABEL}: unknown revision {revision!r}")
    return tree


def tip() -> tuple[str, int | None]:
    """(revision id, revno) of the branch's last revision."""
    return resolve_revision(open_branch(branch_path()), None, label=LABEL)
