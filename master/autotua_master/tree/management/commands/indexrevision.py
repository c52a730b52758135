"""``autotua-master indexrevision [REV]``: read every jobuild of a revision (the tip by default)."""

from django.core.management.base import BaseCommand, CommandError

from autotua.tree import TreeError
from autotua_master.tree.validation import index_revision


class Command(BaseCommand):
    help = "Index a revision of the tree: read and check every jobuild, warming the metadata cache."

    def add_arguments(self, parser):
        parser.add_argument("revision", nargs="?", default=None)

    def handle(self, revision, **_):
        try:
            rev = index_revision(revision)
        except TreeError as e:
            raise CommandError(str(e)) from None
        bad = sum(1 for j in rev.jobuilds if j["errors"])
        self.stdout.write(f"revision {rev.revno} ({rev.revision_id}): {len(rev.jobuilds)} jobuilds, {bad} with errors")
