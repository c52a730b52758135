"""``autotua-master createjob ATOM [--revision R] [--arch A] [--stage3 F] [--owner USER]``."""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from autotua.tree import TreeError
from autotua_master.jobs.models import Job


class Command(BaseCommand):
    help = "Create a job: validate ATOM at a revision (default: the tip) and print its state."

    def add_arguments(self, parser):
        parser.add_argument("root")
        parser.add_argument("--revision", default=None)
        parser.add_argument("--arch", default=None)
        parser.add_argument("--stage3", default=None)
        parser.add_argument("--owner", default=None, help="user name (default: none)")
        parser.add_argument("--json", action="store_true", help="print the job as the API shows it")

    def handle(self, root, revision, arch, stage3, owner, json: bool, **_):
        user = None
        if owner:
            user = get_user_model().objects.filter(username=owner).first()
            if user is None:
                raise CommandError(f"no user {owner!r}")
        try:
            job = Job.objects.create_job(root=root, revision=revision, arch=arch, stage3=stage3, owner=user)
        except TreeError as e:
            raise CommandError(str(e)) from None
        if json:
            from autotua_master.api.serializers import JobSerializer

            self.stdout.write(_dumps(JobSerializer(job).data))
            return
        self.stdout.write(f"job #{job.pk} {job.root} at r{job.revision.revno}: {job.state}"
                          + (f" ({job.reason})" if job.reason else ""))
        for e in job.errors:
            self.stdout.write(f"  error: {e['message']}")
        for w in job.warnings:
            self.stdout.write(f"  warning: {w['message']}")


def _dumps(data) -> str:
    return json.dumps(data, indent=2, default=str)
