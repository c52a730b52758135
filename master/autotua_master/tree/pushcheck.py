"""What the master checks before its branch's tip moves to a pushed revision, and what it does after.

The checks are the jobuild core's own (:mod:`autotua.maintainer`): the pusher's changes, revision by
revision, stay in their ``<user>/`` (staff: anywhere); and ``check_tree`` at the new tip, with the
fingerprints the master records, finds no error the old tip did not already have (a maintainer is not
held back by someone else's expired key). A refusal's message is ``autotua-jobuild check``'s report of
the pushed revision, plus the ownership problems, so the maintainer sees exactly what to fix.
"""

from __future__ import annotations

import contextvars
import logging
import threading

from autotua.depgraph import Problem

log = logging.getLogger(__name__)

#: the push's :class:`~.push.Pusher` for the length of one smart request (set by :mod:`.push`); the
#: hooks act only while it is set
current_pusher: contextvars.ContextVar = contextvars.ContextVar("autotua_pusher", default=None)

_installed = False
_install_lock = threading.Lock()


def install_hooks() -> None:
    """Install the tip hooks in this process, once. They act only inside a push request (they look
    at :data:`current_pusher`), so the master's own use of breezy is not affected."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from breezy.branch import Branch

        Branch.hooks.install_named_hook("pre_change_branch_tip", _pre_change, "AutotuA push checks")
        Branch.hooks.install_named_hook("post_change_branch_tip", _post_change, "AutotuA index the new tip")
        _installed = True


def _pre_change(params) -> None:
    from breezy.errors import TipChangeRejected

    pusher = current_pusher.get()
    if pusher is None:
        return
    ok, lines = check_push(params.branch, params.old_revid, params.new_revid, params.new_revno, pusher)
    if not ok:
        log.info("push by %s refused: %s", pusher.username, lines[-1])
        raise TipChangeRejected("\n" + "\n".join(lines))
    log.info("push by %s accepted: r%s", pusher.username, params.new_revno)


def _post_change(params) -> None:
    pusher = current_pusher.get()
    if pusher is not None:
        pusher.landed.append(params.new_revid.decode())


def index_landed(revision_id: str) -> None:
    """Index a revision a push made the tip (the tree browser and job suggestions show it at once)."""
    from .validation import index_revision

    try:
        index_revision(revision_id)
    except Exception:  # the tip moved: a failed index is the master's problem, not the push's
        log.exception("indexing %s after a push failed", revision_id)


def check_push(bzr_branch, old_revid: bytes, new_revid: bytes, new_revno: int, pusher) -> tuple[bool, list[str]]:
    """(accepted, report lines) for moving ``bzr_branch``'s tip from ``old_revid`` to ``new_revid``."""
    from autotua.tree import BzrTree

    opened: list[BzrTree] = []

    def tree_at(revid) -> BzrTree:
        t = BzrTree.of(bzr_branch, revid)
        opened.append(t)
        return t

    try:
        return _check(bzr_branch, old_revid, new_revid, new_revno, pusher, tree_at)
    finally:
        for t in opened:
            t.close()


def _check(bzr_branch, old_revid, new_revid, new_revno, pusher, tree_at) -> tuple[bool, list[str]]:
    from breezy.revision import NULL_REVISION

    from autotua.maintainer import check_tree, ownership_problems, problem_lines
    from autotua.tree import changed_paths

    from .models import Maintainer
    from .validation import shared_reader

    repo = bzr_branch.repository
    graph = repo.get_graph()
    if old_revid != NULL_REVISION and not graph.is_ancestor(old_revid, new_revid):
        return False, [" * ERROR [not-descendant] the pushed revision does not descend from the master's tip: "
                       "someone pushed meanwhile, or this is an --overwrite; pull (merge), then push",
                       ">>> push refused: the branch is unchanged"]
    # ownership, revision by revision along the new mainline; what a revision takes from the master's
    # tip (a merge of it, after "pull, then push") is not the pusher's change
    problems: list[Problem] = []
    seen: set[str] = set()
    old_tree = tree_at(old_revid)
    stop = () if old_revid == NULL_REVISION else (old_revid,)
    for revid in graph.iter_lefthand_ancestry(new_revid, stop):
        parents = graph.get_parent_map([revid]).get(revid) or (NULL_REVISION,)
        tree = tree_at(revid)
        changed = {p for p in changed_paths(tree_at(parents[0]), tree)
                   if tree.entry(p) != old_tree.entry(p)}
        for p in ownership_problems(changed, pusher.maintainer, staff=pusher.staff):
            if p.jobuild.split("/", 1)[0] not in seen:
                seen.add(p.jobuild.split("/", 1)[0])
                problems.append(p)
    cache, reader = shared_reader()
    trusted = Maintainer.objects.trusted()
    new_tree = tree_at(new_revid)
    new_tree.revno = new_revno
    report = check_tree(new_tree, trusted, cache=cache, reader=reader)
    before = set()
    if old_revid != NULL_REVISION:
        before = set(check_tree(old_tree, trusted, cache=cache, reader=reader).errors)
    new_errors = [e for e in report.errors if e not in before]
    lines = problem_lines(problems, []) + report.lines(new_tree.describe())
    if problems or new_errors:
        why = []
        if problems:
            why.append(f"{len(problems)} change(s) outside {pusher.maintainer or 'your'}/")
        if new_errors:
            why.append(f"{len(new_errors)} new error(s) in the tree")
        lines.append(f">>> push refused ({', '.join(why)}): the branch is unchanged")
        return False, lines
    return True, lines
