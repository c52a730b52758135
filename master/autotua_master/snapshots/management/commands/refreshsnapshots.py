"""``autotua-master refreshsnapshots [--mirror URL]``: learn the snapshot dates a mirror holds."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from autotua_master.snapshots import repository
from autotua_master.snapshots.refresh import RefreshError, refresh


class Command(BaseCommand):
    help = ("Read the mirror's snapshots/ directory (AUTOTUA_SNAPSHOT_MIRROR) and record the Gentoo repository "
            "snapshots it holds; new jobs are pinned to the newest. Run it daily (cron, a systemd timer).")

    def add_arguments(self, parser):
        parser.add_argument("--mirror", default=None, help="a Gentoo mirror's base URL (default: "
                                                           "AUTOTUA_SNAPSHOT_MIRROR)")
        parser.add_argument("--no-fetch", action="store_true",
                            help="only learn the dates: do not fetch the newest snapshot for the master itself "
                                 "(it does when AUTOTUA_SNAPSHOT_KEY is set)")

    def handle(self, mirror, no_fetch=False, **_):
        mirror = mirror or settings.AUTOTUA_SNAPSHOT_MIRROR
        if not mirror:
            raise CommandError("no mirror: set AUTOTUA_SNAPSHOT_MIRROR (e.g. https://distfiles.gentoo.org) or "
                               "pass --mirror")
        try:
            done = refresh(mirror)
        except RefreshError as e:
            raise CommandError(str(e)) from None
        for note in done.notes:
            self.stderr.write(f"note: {note}")
        self.stdout.write(f"{len(done.dates)} snapshots on {mirror} ({done.dates[0]} to {done.dates[-1]}), "
                          f"latest {done.latest}; new: {', '.join(done.new) or 'none'}; "
                          f"gone: {', '.join(done.gone) or 'none'}")
        if no_fetch or not repository.configured() or mirror != settings.AUTOTUA_SNAPSHOT_MIRROR:
            return
        # the master reads snapshots (job parameters, arch testing): the newest one now, not on a request
        try:
            repo = repository.prefetch(done.latest)
        except repository.SnapshotUnavailable as e:
            self.stderr.write(f"note: {e}")
            return
        self.stdout.write(f"gentoo-{done.latest} verified and unpacked at {repo.path}, its reverse dependencies "
                          "indexed")
