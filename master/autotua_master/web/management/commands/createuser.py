"""``autotua-master createuser NAME --password-stdin [--staff]``: a person who logs in to the web UI.

Maintainers are made with ``createmaintainer`` (they sign jobuilds); this is for volunteers who run
slaves, and for staff. ``echo secret | autotua-master createuser vera --password-stdin``.
"""

import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create (or update) a user who logs in to the web UI; the password is read from standard input."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--password-stdin", action="store_true", required=True,
                            help="read the password from the first line of standard input")
        parser.add_argument("--staff", action="store_true", help="staff: every action, and the admin")
        parser.add_argument("--email", default="")

    def handle(self, name, staff, email, **_):
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            raise CommandError("standard input gave an empty password")
        user, created = get_user_model().objects.get_or_create(username=name, defaults={"email": email})
        user.set_password(password)
        if staff:
            user.is_staff = user.is_superuser = True
        user.save()
        self.stdout.write(f"user {name} {'created' if created else 'updated'}{' (staff)' if staff else ''}")
