"""``autotua-master sweepleases``: requeue the jobs of runs whose lease ran out (also done on claim)."""

from django.core.management.base import BaseCommand
from django.db import transaction

from autotua_master.jobs.dispatch import sweep


class Command(BaseCommand):
    help = "End runs whose lease expired; their jobs are requeued, or set to error past their attempts."

    def handle(self, **_):
        with transaction.atomic():
            n = sweep()
        self.stdout.write(f"{n} expired run(s) swept")
