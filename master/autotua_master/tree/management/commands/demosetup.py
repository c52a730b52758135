"""``autotua-master demosetup --fingerprint alice=FPR --fingerprint bob=FPR``: the demo's master side."""

from django.core.management.base import BaseCommand, CommandError

from autotua.signature import normalise_fingerprint
from autotua_master.demo import setup_sample


class Command(BaseCommand):
    help = ("Create the maintainers, a slave and the sample jobs; print their states, the SIDEPEND jobs "
            "the master queued by itself, and the tokens (as 'token NAME VALUE' lines).")

    def add_arguments(self, parser):
        parser.add_argument("--fingerprint", action="append", required=True, metavar="USER=FPR")
        parser.add_argument("--slave", default="demo-slave")
        parser.add_argument("--arch", default="amd64")

    def handle(self, fingerprint, slave, arch, **_):
        fprs = {}
        for item in fingerprint:
            user, sep, fpr = item.partition("=")
            if not sep:
                raise CommandError(f"--fingerprint {item!r}: expected USER=FINGERPRINT")
            try:
                fprs[user] = normalise_fingerprint(fpr)
            except ValueError as e:
                raise CommandError(str(e)) from None
        setup = setup_sample(fprs, slave=slave, arch=arch, out=self.stdout.write)
        for name, token in setup.person_tokens.items():
            self.stdout.write(f"token {name} {token}")
        self.stdout.write(f"token {slave} {setup.slave_token}")
