"""``autotua-master createslave NAME --arch amd64 [--flavour openrc]...``: an approved slave and its token."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from autotua_master.slaves.models import Slave, SlaveState


class Command(BaseCommand):
    help = "Create an active slave and print its token (shown only now; it is stored hashed)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--arch", required=True)
        parser.add_argument("--flavour", action="append", dest="flavours", help="stage3 flavour (repeatable)")
        parser.add_argument("--owner", help="the user who runs it (sees and manages it in the web UI)")
        parser.add_argument("--quiet-token", action="store_true", help="print the token alone")

    def handle(self, name, arch, flavours, owner, quiet_token, **_):
        if Slave.objects.filter(name=name).exists():
            raise CommandError(f"a slave named {name!r} exists (use the admin to make it a new token)")
        user = None
        if owner:
            user = get_user_model().objects.filter(username=owner).first()
            if user is None:
                raise CommandError(f"no user named {owner!r}")
        slave, token = Slave.objects.create_with_token(name=name, arch=arch, flavours=flavours or ["openrc"],
                                                       state=SlaveState.ACTIVE, owner=user)
        if quiet_token:
            self.stdout.write(token)
        else:
            self.stdout.write(f"slave {slave.name} ({slave.arch}: {', '.join(slave.flavours)})\ntoken {token}")
