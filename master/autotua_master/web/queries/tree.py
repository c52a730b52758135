"""The tree browser: revisions, maintainers, each revision's jobuilds (from its index), a jobuild's
metadata and text, and the history of its results per content digest."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db.models import Count
from django.http import Http404

from autotua.atom import AtomError, JobuildId
from autotua.tree import TreeError
from autotua_master.jobs.models import JobuildResult
from autotua_master.tree import branch
from autotua_master.tree.models import Maintainer, Revision
from autotua_master.tree.validation import index_revision

log = logging.getLogger(__name__)

#: a jobuild's text is shown up to this size (the master refuses jobuilds over 1 MiB anyway)
MAX_SOURCE = 1 << 20


def ensure_indexed(rev: Revision) -> Revision:
    """The revision with its jobuilds read (done once, on first need; the metadata cache makes it cheap)."""
    if rev.indexed is None:
        rev = index_revision(rev.revision_id)
    return rev


def tip() -> Revision | None:
    """The branch's last revision, indexed; None when the master has no branch yet."""
    try:
        revision_id, revno = branch.tip()
    except TreeError as e:
        log.warning("no tree: %s", e)
        return None
    return ensure_indexed(Revision.objects.pin(revision_id, revno))


def revision(revno: int) -> Revision:
    rev = Revision.objects.filter(revno=revno).first()
    if rev is None:
        tip_rev = tip()
        if tip_rev is None or tip_rev.revno is None or revno > tip_rev.revno or revno < 1:
            raise Http404(f"no revision {revno}")
        try:
            rev = index_revision(revno)
        except TreeError as e:
            raise Http404(str(e)) from None
    return ensure_indexed(rev)


def revisions():
    return Revision.objects.annotate(n_jobs=Count("jobs")).order_by("-revno", "-id")


def indexed_revisions():
    return Revision.objects.exclude(indexed=None).order_by("-revno", "-id")


def maintainers():
    return Maintainer.objects.select_related("user").annotate(n_jobs=Count("user__jobs")).order_by("name")


def by_user(rev: Revision) -> list[tuple[str, list[dict]]]:
    groups: dict[str, list[dict]] = {}
    for j in rev.jobuilds:
        groups.setdefault(j["jobuild"].split("/", 1)[0], []).append(j)
    return sorted(groups.items())


def atom_suggestions(rev: Revision | None) -> list[str]:
    """Atoms a maintainer may want: every ``user/name``, then every ``=user/name-version``."""
    if rev is None:
        return []
    names = sorted({j["jobuild"].rsplit("-", 1)[0] for j in rev.jobuilds})
    return names + sorted("=" + j["jobuild"] for j in rev.jobuilds)


@dataclass
class DigestHistory:
    digest: str
    revisions: list[Revision]  # indexed revisions where the jobuild had this digest
    results: list[JobuildResult] = field(default_factory=list)

    @property
    def passed_on(self) -> list[str]:
        return sorted({r.run.slave.name for r in self.results if r.status == "passed"})

    @property
    def failed_on(self) -> list[str]:
        return sorted({r.run.slave.name for r in self.results if r.status == "failed"})


@dataclass
class JobuildPage:
    jobuild: str
    revision: Revision
    meta: dict | None  # the revision's index entry; None when the jobuild is not in it
    source: str | None
    versions: list[str]  # every version of user/name at this revision
    history: list[DigestHistory]


def jobuild_page(jobuild: str, rev: Revision) -> JobuildPage:
    try:
        jid = JobuildId.parse(jobuild)
    except AtomError:
        raise Http404(f"{jobuild!r} is not a jobuild") from None
    meta = next((j for j in rev.jobuilds if j["jobuild"] == str(jid)), None)
    source = None
    if meta is not None:
        try:
            data = branch.open_tree(rev.revision_id).read_bytes(meta["path"])
            source = data[:MAX_SOURCE].decode("utf-8", "replace")
        except (TreeError, OSError) as e:
            source = None
            log.warning("cannot read %s at %s: %s", meta["path"], rev, e)
    prefix = f"{jid.user}/{jid.name}-"
    versions = [j["jobuild"] for j in rev.jobuilds if j["jobuild"].startswith(prefix)
                and j["jobuild"][len(prefix):][:1].isdigit()]
    return JobuildPage(str(jid), rev, meta, source, versions, history(str(jid), meta))


def history(jobuild: str, meta: dict | None) -> list[DigestHistory]:
    """Results of ``jobuild`` grouped by content digest, the current digest first, then newest first."""
    seen: dict[str, DigestHistory] = {}
    for rev in indexed_revisions():
        for j in rev.jobuilds:
            if j["jobuild"] == jobuild:
                seen.setdefault(j["digest"], DigestHistory(j["digest"], [])).revisions.append(rev)
    for r in (JobuildResult.objects.filter(jobuild=jobuild).select_related("run__slave", "job")
              .order_by("-received")):
        seen.setdefault(r.digest, DigestHistory(r.digest, [])).results.append(r)
    current = meta["digest"] if meta else None
    return sorted(seen.values(), key=lambda h: (h.digest != current,
                                               -(h.results[0].received.timestamp() if h.results else 0)))
