"""The demo's entry point on the master side: maintainers, a slave, the sample jobs, and a report.

``autotua-master demosetup --fingerprint alice=FPR --fingerprint bob=FPR`` (with ``AUTOTUA_TREE``
naming the signed sample branch) or :func:`setup_sample` from Python, after ``migrate``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction

SAMPLE_JOBS = [
    ("alice", "alice/toolchain-sanity"),
    ("alice", "alice/hello-suite"),
    ("bob", "bob/portconf-check"),
    ("bob", "bob/integration"),
    ("bob", "bob/fail-on-purpose"),
    ("bob", "bob/needs-failing"),
    ("bob", "bob/no-such-jobuild"),
]


@dataclass
class DemoSetup:
    slave_token: str
    person_tokens: dict[str, str]
    jobs: list = field(default_factory=list)  # the sample jobs, as created
    automatic: list = field(default_factory=list)  # the jobs the master queued for SIDEPENDs


def setup_sample(fingerprints: dict[str, str], *, slave: str = "demo-slave", arch: str = "amd64",
                 flavours: tuple[str, ...] = ("openrc",), out: Callable[[str], None] = print,
                 passwords: dict[str, str] | None = None) -> DemoSetup:
    """Create maintainers (with API tokens, and web UI ``passwords`` for those named there), an active
    slave (its token is returned), the sample jobs, and print each job's validated state and the
    SIDEPEND jobs the master queued by itself."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from autotua_master.jobs.models import Job
    from autotua_master.slaves.models import Slave, SlaveState
    from autotua_master.tree.models import Maintainer

    with transaction.atomic():
        tokens = {}
        for name, fpr in sorted(fingerprints.items()):
            user, _ = get_user_model().objects.get_or_create(username=name)
            if passwords and name in passwords:
                user.set_password(passwords[name])
                user.save(update_fields=["password"])
            Maintainer.objects.update_or_create(user=user, defaults={"name": name, "fingerprint": fpr})
            tokens[name] = Token.objects.get_or_create(user=user)[0].key
        Slave.objects.filter(name=slave).delete()
        _, slave_token = Slave.objects.create_with_token(name=slave, arch=arch, flavours=list(flavours),
                                                         state=SlaveState.ACTIVE)
    users = {u.username: u for u in get_user_model().objects.filter(username__in=fingerprints)}
    setup = DemoSetup(slave_token, tokens)
    for owner, root in SAMPLE_JOBS:
        setup.jobs.append(Job.objects.create_job(root=root, owner=users.get(owner)))
    setup.automatic = list(Job.objects.filter(owner=None).order_by("id"))
    out(report(setup.jobs, setup.automatic))
    return setup


def report(jobs, automatic) -> str:
    from autotua_master.jobs.models import Provision

    lines = ["jobs (validated at once):"]
    for job in jobs:
        job.refresh_from_db()
        lines.append(f"  #{job.pk:<3} {job.root:<26} {job.owner.username if job.owner else '-':<6} "
                     f"{job.state:<8} {job.reason}")
        for e in job.errors:
            lines.append(f"        error: {e['message']}")
    lines.append("queued by the master itself, for SIDEPENDs:")
    for job in automatic:
        job.refresh_from_db()
        waiters = sorted({r.job_id for p in Provision.objects.filter(provider=job) for r in p.requirements.all()})
        lines.append(f"  #{job.pk:<3} {job.root:<26} {job.state:<8} for job(s) {', '.join(f'#{w}' for w in waiters)}")
    if not automatic:
        lines.append("  (none)")
    return "\n".join(lines)
