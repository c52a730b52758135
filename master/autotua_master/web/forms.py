"""The web UI's forms: they validate what a person typed and do the one thing each is for."""

from __future__ import annotations

import re

from django import forms
from django.conf import settings
from django.core.validators import RegexValidator

from autotua.atom import Atom, AtomError
from autotua.tree import TreeError
from autotua_master.jobs.models import Job, JobState
from autotua_master.slaves.models import Slave, SlaveState

word = RegexValidator(r"\A[a-z0-9][a-z0-9_-]*\Z",
                      "a word like 'amd64' or 'openrc': lower-case letters, digits, _ and -")
slave_name = RegexValidator(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z",
                            "letters, digits, '_', '.' and '-', starting with a letter or digit")


def _atom(value: str) -> str:
    value = value.strip()
    try:
        Atom.parse(value)
    except AtomError as e:
        raise forms.ValidationError(str(e)) from None
    return value


# -- jobs ------------------------------------------------------------------------------------------
class JobFilterForm(forms.Form):
    """The jobs list's filters; every field optional, unknown values simply match nothing."""

    state = forms.ChoiceField(required=False, choices=[("", "any state"), *JobState.choices])
    owner = forms.CharField(required=False, max_length=150, label="maintainer",
                            help_text="the job's owner; '-' for the jobs the master queued for SIDEPENDs")
    atom = forms.CharField(required=False, max_length=255, help_text="part of the root atom")
    slave = forms.CharField(required=False, max_length=100, help_text="ran (or runs) on this slave")
    arch = forms.CharField(required=False, max_length=32)

    def apply(self, qs):
        if not self.is_valid():
            return qs.none()
        d = self.cleaned_data
        if d["state"]:
            qs = qs.filter(state=d["state"])
        if d["owner"] == "-":
            qs = qs.filter(owner=None)
        elif d["owner"]:
            qs = qs.filter(owner__username=d["owner"])
        if d["atom"]:
            qs = qs.filter(root__icontains=d["atom"].strip())
        if d["slave"]:
            qs = qs.filter(runs__slave__name=d["slave"]).distinct()
        if d["arch"]:
            qs = qs.filter(arch=d["arch"])
        return qs


def _revision_choices(tip, indexed) -> list[tuple[str, str]]:
    tip_label = f"the tip (r{tip.revno})" if tip is not None else "the tip"
    return [("", tip_label)] + [(str(r.revno), f"r{r.revno} ({r.revision_id})") for r in indexed
                                if r.revno is not None]


class JobCreateForm(forms.Form):
    atom = forms.CharField(max_length=255, validators=[_atom],
                           widget=forms.TextInput(attrs={"list": "atoms", "autocomplete": "off",
                                                         "placeholder": "alice/hello-suite",
                                                         "autofocus": True}),
                           help_text="user/name (the highest version), =user/name-1.0, >=user/name-1 ...")
    revision = forms.ChoiceField(required=False, help_text="the tree revision the job is pinned to")
    arch = forms.CharField(max_length=32, validators=[word],
                           widget=forms.TextInput(attrs={"list": "arches"}))
    stage3 = forms.CharField(required=False, max_length=32, validators=[word], label="flavour",
                             widget=forms.TextInput(attrs={"list": "flavours", "placeholder": "the root's STAGE3"}),
                             help_text="stage3 flavour; empty: the root jobuild's STAGE3 (openrc by default)")
    snapshot = forms.ChoiceField(required=False, label="Gentoo repository",
                                 help_text="the snapshot of the Gentoo ebuild repository the job runs against")
    notify = forms.BooleanField(required=False, label="email me when it ends",
                                help_text="to the address of your account")
    parameters = forms.CharField(required=False, max_length=40000, strip=False,
                                 widget=forms.Textarea(attrs={"rows": 3, "placeholder": "atom==app-misc/hello-1.0\n"
                                                                                         "use=french -english"}),
                                 help_text="the root jobuild's parameter values (its PARAMETERS), one name=value a "
                                           "line; the jobuild's defaults for the others")

    def __init__(self, *args, tip=None, indexed=(), **kw):
        from autotua_master.snapshots.models import Snapshot

        kw.setdefault("initial", {"arch": settings.AUTOTUA_DEFAULT_ARCH})
        super().__init__(*args, **kw)
        self.fields["revision"].choices = _revision_choices(tip, indexed)
        dates = list(Snapshot.objects.listed().order_by("-date").values_list("date", flat=True)[:60])
        newest = f"the newest ({dates[0]})" if dates else "none (the master knows no snapshot)"
        self.fields["snapshot"].choices = [("", newest)] + [(d, f"gentoo-{d}.tar.xz") for d in dates]

    def clean_atom(self) -> str:
        return self.cleaned_data["atom"].strip()

    def clean_parameters(self) -> dict[str, str]:
        return parse_parameter_lines(self.cleaned_data["parameters"])

    def save(self, owner) -> Job | None:
        """The job, validated and stored (invalid ones too: their page lists every error);
        None with a field error when the revision is unknown (nothing is stored then)."""
        from autotua_master.snapshots.models import UnknownSnapshot

        d = self.cleaned_data
        try:
            return Job.objects.create_job(root=d["atom"], revision=d["revision"] or None, arch=d["arch"],
                                          stage3=d["stage3"] or None, owner=owner, snapshot=d["snapshot"] or None,
                                          notify=d["notify"], parameters=d["parameters"] or None)
        except TreeError as e:
            self.add_error("revision", str(e))
        except UnknownSnapshot as e:
            self.add_error("snapshot", str(e))
        return None


def parse_parameter_lines(text: str) -> dict[str, str]:
    """``name=value`` lines (blank ones skipped) -> values; a value is everything after the first '='."""
    from autotua.params import MAX_PARAMETERS

    out: dict[str, str] = {}
    if "\0" in text:
        raise forms.ValidationError("parameter values hold no NUL character")
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, eq, value = line.partition("=")
        name = name.strip()
        if not eq or not re.match(r"\A[a-z][a-z0-9_]{0,31}\Z", name):
            raise forms.ValidationError(f"line {n}: {line[:60]!r} is not name=value (a name is lower-case letters, "
                                        "digits and '_')")
        if name in out:
            raise forms.ValidationError(f"line {n}: {name} is given twice")
        out[name] = value
    if len(out) > MAX_PARAMETERS:
        raise forms.ValidationError(f"at most {MAX_PARAMETERS} parameters")
    return out


class ArchTestForm(forms.Form):
    """An arch-testing group from a bug's package list (docs/arch-testing.md)."""

    packages = forms.CharField(max_length=20000, strip=False, label="package list",
                               widget=forms.Textarea(attrs={"rows": 6, "autofocus": True,
                                                            "placeholder": "=app-misc/hello-1.0 amd64 x86\n"
                                                                           "=dev-libs/libgreet-1.0 ^"}),
                               help_text="as in the bug's package list field (NATTkA's format): one =cat/pkg-ver "
                                         "[arch...] a line, ^ for the arches of the line above")
    bug = forms.IntegerField(required=False, min_value=1, max_value=2**31 - 1, help_text="the Gentoo bug number")
    stable = forms.ChoiceField(choices=[("1", "stabilisation"), ("0", "keywording")], initial="1", label="request")
    arches = forms.CharField(required=False, max_length=400,
                             help_text="the arches you test (a line without arches gets these; every line is "
                                       "limited to them); separated by spaces")
    flavours = forms.CharField(max_length=400, initial="openrc", help_text="stage3 flavours, separated by spaces")
    combinations = forms.IntegerField(min_value=0, max_value=64, initial=12,
                                      help_text="USE combinations per package, satisfying REQUIRED_USE (tatt's "
                                                "usecombis), besides the defaults, all-off and all-on")
    rdeps = forms.IntegerField(min_value=0, max_value=64, initial=10, label="reverse dependencies",
                               help_text="per package and arch (tatt's rdeps)")
    seed = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1,
                              help_text="what draws them (empty: a new one, recorded on the group)")
    filter = forms.CharField(required=False, max_length=2000, strip=False,
                             help_text='drop combinations: !(arch == "x86" && kind == "rdep")')
    second_opinion = forms.BooleanField(required=False, initial=True,
                                        help_text="run a failed configuration once more on another slave")

    def _words(self, name: str) -> list[str]:
        items = [w for w in re.split(r"[\s,]+", self.cleaned_data[name] or "") if w]
        for w in items:
            word(w)
        return list(dict.fromkeys(items))

    def clean_arches(self) -> list[str]:
        return self._words("arches")

    def clean_flavours(self) -> list[str]:
        items = self._words("flavours")
        if not items:
            raise forms.ValidationError("name at least one flavour, e.g. openrc")
        return items

    def save(self, owner):
        """The group, or None with the faults as form errors (nothing is stored then)."""
        from autotua_master.groups.archtest import ArchTestRequest, create_archtest
        from autotua_master.groups.create import GroupInvalid
        from autotua_master.snapshots.models import UnknownSnapshot

        d = self.cleaned_data
        req = ArchTestRequest(packages=d["packages"], bug=d["bug"], stable=d["stable"] == "1",
                              arches=tuple(d["arches"]), flavours=tuple(d["flavours"]),
                              combinations=d["combinations"], rdeps=d["rdeps"], seed=d["seed"], filter=d["filter"],
                              second_opinion=d["second_opinion"])
        try:
            return create_archtest(req, owner)
        except GroupInvalid as e:
            for err in e.errors:
                where = " ".join(x for x in (err["row"], err["arch"]) if x)
                self.add_error("packages" if not where else None, f"{where}: {err['message']}" if where
                               else err["message"])
        except (TreeError, UnknownSnapshot) as e:
            self.add_error(None, str(e))
        return None


class RevalidateForm(forms.Form):
    revision = forms.ChoiceField(required=False)

    def __init__(self, *args, tip=None, indexed=(), **kw):
        super().__init__(*args, **kw)
        self.fields["revision"].choices = _revision_choices(tip, indexed)


class CancelForm(forms.Form):
    reason = forms.CharField(required=False, max_length=1000,
                             widget=forms.TextInput(attrs={"placeholder": "why (optional)"}))


# -- slaves ----------------------------------------------------------------------------------------
class SlaveCreateForm(forms.Form):
    """A volunteer adds a slave they run: it is theirs, pending until staff approve it (staff's own
    slaves are active at once). Its token is shown once, in the answer."""

    name = forms.CharField(max_length=100, validators=[slave_name])
    arch = forms.CharField(max_length=32, validators=[word], initial="amd64")
    flavours = forms.CharField(max_length=400, initial="openrc",
                               help_text="stage3 flavours it serves, separated by spaces or commas")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if Slave.objects.filter(name=name).exists():
            raise forms.ValidationError(f"a slave named {name!r} already exists; pick another name")
        return name

    def clean_flavours(self) -> list[str]:
        items = [f for f in re.split(r"[\s,]+", self.cleaned_data["flavours"]) if f]
        if not items:
            raise forms.ValidationError("name at least one flavour, e.g. openrc")
        for f in items:
            word(f)
        return list(dict.fromkeys(items))

    def save(self, owner) -> tuple[Slave, str]:
        d = self.cleaned_data
        state = SlaveState.ACTIVE if owner.is_staff else SlaveState.PENDING
        slave, token = Slave.objects.create_with_token(name=d["name"], arch=d["arch"], flavours=d["flavours"],
                                                       state=state, owner=owner)
        if owner.is_staff:
            slave.approve(by=owner)
        return slave, token


class AdoptSlaveForm(forms.Form):
    """A slave registered over the API has no owner: whoever holds its token may claim it."""

    token = forms.CharField(max_length=200, widget=forms.PasswordInput,
                            help_text="the token the slave was given when it registered (s<id>_...)")

    def __init__(self, *args, user=None, **kw):
        super().__init__(*args, **kw)
        self.user = user
        self.slave = None

    def clean_token(self) -> str:
        token = self.cleaned_data["token"].strip()
        slave = Slave.objects.authenticate(token)
        if slave is None:
            raise forms.ValidationError("no slave has this token")
        if slave.owner_id is not None and slave.owner_id != self.user.pk:
            raise forms.ValidationError(f"slave {slave.name} already belongs to someone else; ask staff")
        self.slave = slave
        return token

    def save(self) -> Slave:
        self.slave.owner = self.user
        self.slave.save(update_fields=["owner"])
        return self.slave
