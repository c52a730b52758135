"""``autotua-master createmaintainer NAME --fingerprint FPR``: a user whose tree key the master trusts.

``--password-stdin`` also sets their web UI password (``echo secret | autotua-master createmaintainer ...``).
"""

import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from autotua.signature import normalise_fingerprint
from autotua_master.tree.models import Maintainer


class Command(BaseCommand):
    help = "Create (or update) a maintainer: a user named NAME whose key in the tree must have FPR."

    def add_arguments(self, parser):
        parser.add_argument("name", help="the maintainer's directory in the tree, also the user name")
        parser.add_argument("--fingerprint", required=True, help="the full OpenPGP fingerprint")
        parser.add_argument("--email", default="")
        parser.add_argument("--staff", action="store_true", help="also make the user staff")
        parser.add_argument("--token", action="store_true", help="print an API token for the user")
        parser.add_argument("--password-stdin", action="store_true",
                            help="set the web UI password to the first line read from standard input")

    def handle(self, name, fingerprint, email, staff, token, password_stdin, **_):
        password = None
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
            if not password:
                raise CommandError("--password-stdin: standard input gave an empty password")
        try:
            fpr = normalise_fingerprint(fingerprint)
        except ValueError as e:
            raise CommandError(str(e)) from None
        with transaction.atomic():
            user, _ = get_user_model().objects.get_or_create(username=name, defaults={"email": email})
            if staff and not user.is_staff:
                user.is_staff = True
                user.save(update_fields=["is_staff"])
            if password is not None:
                user.set_password(password)
                user.save(update_fields=["password"])
            Maintainer.objects.update_or_create(user=user, defaults={"name": name, "fingerprint": fpr})
        self.stdout.write(f"maintainer {name}: {fpr}")
        if token:
            self.stdout.write(f"token {Token.objects.get_or_create(user=user)[0].key}")
