"""Request and answer shapes of the API; the slave's are exactly those of docs/protocol.md."""

from __future__ import annotations

import datetime
import re
import threading

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from autotua.atom import Atom, AtomError
from autotua_master.jobs.models import Job, JobuildResult, Run, RunInputs
from autotua_master.slaves.models import Slave

_WORD = re.compile(r"\A[a-z0-9][a-z0-9_-]*\Z")


def _word(value: str) -> str:
    if not _WORD.match(value):
        raise serializers.ValidationError(f"{value!r} is not a word like 'amd64' or 'openrc'")
    return value


class Word(serializers.CharField):
    def __init__(self, **kw):
        kw.setdefault("max_length", 32)
        super().__init__(validators=[_word], **kw)


class Instant(serializers.DateTimeField):
    """A moment, kept in UTC (the master's zone): a fixed zone spares DRF a look-up of the current one
    for every value, four or five times in each result."""

    def __init__(self, **kw):
        super().__init__(default_timezone=datetime.UTC, **kw)


#: the bounds of the database's integer columns: a number outside them is a 400, not a database error
INT64 = {"min_value": -(2**63), "max_value": 2**63 - 1}
SIZE = {"min_value": 0, "max_value": 2**63 - 1}
EXIT_CODE = {"min_value": -(2**31), "max_value": 2**31 - 1}

_FACT_KEY = re.compile(r"\A[A-Za-z0-9_.-]{1,64}\Z")


class HostField(serializers.DictField):
    """What a slave says of its host (``hostname``, ``kernel``, ``cpus``, ``memory``...): at most 32
    facts, each a short word naming a string (at most 256 characters), a number, a boolean or null."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if len(value) > 32:
            raise serializers.ValidationError("at most 32 host facts")
        for k, v in value.items():
            if not _FACT_KEY.match(k):
                raise serializers.ValidationError(f"{k[:70]!r} is not a host fact's name (letters, digits, _.-)")
            if isinstance(v, str) and len(v) > 256:
                raise serializers.ValidationError(f"{k}: at most 256 characters")
            if isinstance(v, int) and not isinstance(v, bool) and not INT64["min_value"] <= v <= INT64["max_value"]:
                raise serializers.ValidationError(f"{k}: a number out of range")
            if not (v is None or isinstance(v, str | int | float | bool)):
                raise serializers.ValidationError(f"{k}: a host fact is a string, a number, a boolean or null")
        return value


_FINGERPRINT = re.compile(r"\A[0-9A-Fa-f]{40}\Z")
#: the most fingerprints a slave may name in ``trust``
MAX_TRUST = 1000


class TrustField(serializers.ListField):
    """The maintainers a slave takes jobs from: their full OpenPGP fingerprints (40 hex digits, stored
    upper-case, sorted, once each). ``null`` or absent: every maintainer the master records."""

    def __init__(self, **kw):
        super().__init__(child=serializers.CharField(trim_whitespace=False), max_length=MAX_TRUST,
                         allow_empty=True, required=False, allow_null=True, default=None, **kw)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        bad = next((f for f in value if not _FINGERPRINT.match(f)), None)
        if bad is not None:
            raise serializers.ValidationError(f"{bad[:50]!r} is not a full OpenPGP fingerprint (40 hex digits)")
        return sorted({f.upper() for f in value})


_shapes = threading.local()


class Shape(serializers.Serializer):
    """A body slaves send on every call, only ever validated. DRF deep-copies a serializer's fields for
    every instance, so that one instance may change its own — a fifth of a slave call's time on the
    master (bench/claims.py); nothing changes these, so each thread builds them once and keeps them
    (validating holds no state in a field: tests/hardening/test_api_inputs.py checks that answers do
    not depend on what was validated before)."""

    @property
    def fields(self):
        cache = _shapes.__dict__.setdefault("fields", {})
        fields = cache.get(type(self))
        if fields is None:
            fields = cache[type(self)] = serializers.BindingDict(self)
            for name, field in self.get_fields().items():
                fields[name] = field
        return fields


# -- slaves -----------------------------------------------------------------------------------------
class SlaveFactsSerializer(Shape):
    arch = Word()
    flavours = serializers.ListField(child=Word(), allow_empty=False, max_length=32)
    host = HostField(required=False, default=dict)
    free_disk = serializers.IntegerField(required=False, allow_null=True, **SIZE)
    version = serializers.CharField(required=False, allow_blank=True, max_length=64, default="")


class RegisterSerializer(SlaveFactsSerializer):
    name = serializers.RegexField(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z", max_length=100)

    def validate_name(self, value: str) -> str:
        if Slave.objects.filter(name=value).exists():
            raise serializers.ValidationError(f"a slave named {value!r} already exists; pick another name")
        return value


class SlaveSerializer(serializers.ModelSerializer):
    current_run = serializers.SerializerMethodField()

    class Meta:
        model = Slave
        fields = ["id", "name", "state", "arch", "flavours", "current_run", "last_seen"]

    def get_current_run(self, slave: Slave) -> str | None:
        run = slave.current_run
        return str(run.uuid) if run else None


class ClaimSerializer(SlaveFactsSerializer):
    run = serializers.UUIDField()
    trust = TrustField()


class DistfileSerializer(serializers.Serializer):
    name = serializers.CharField()
    url = serializers.CharField()
    size = serializers.IntegerField()
    blake2b = serializers.CharField()
    sha512 = serializers.CharField()


class PlanEntrySerializer(serializers.Serializer):
    index = serializers.IntegerField()
    jobuild = serializers.CharField()
    path = serializers.CharField()
    digest = serializers.CharField()
    inherited = serializers.ListField(child=serializers.CharField())
    src_uri = DistfileSerializer(many=True)
    portconf_uri = DistfileSerializer(many=True)
    parameters = serializers.DictField(child=serializers.CharField(), required=False,
                                       help_text="the values its phases see as PARAM_<NAME> (none: {})")


class LeaseSerializer(serializers.Serializer):
    expires = serializers.DateTimeField()
    seconds = serializers.IntegerField()
    heartbeat_every = serializers.IntegerField()


class TreeRefSerializer(serializers.Serializer):
    url = serializers.CharField()
    revision = serializers.CharField()
    revno = serializers.IntegerField(allow_null=True)


class SnapshotRefSerializer(serializers.Serializer):
    date = serializers.CharField(help_text="YYYYMMDD")
    name = serializers.CharField(help_text="gentoo-<date>.tar.xz")
    url = serializers.CharField(allow_blank=True, help_text="the base URL of a mirror's snapshots/ directory (a "
                                                            "hint: the slave's own mirror comes first)")


class LimitsSerializer(serializers.Serializer):
    phase_timeout = serializers.IntegerField()
    log_chunk_bytes = serializers.IntegerField()
    attachment_bytes = serializers.IntegerField()


class ClaimedJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    attempt = serializers.IntegerField()
    root = serializers.CharField()
    arch = serializers.CharField()
    stage3 = serializers.CharField()
    tree = TreeRefSerializer()
    snapshot = SnapshotRefSerializer(allow_null=True)
    plan = PlanEntrySerializer(many=True)
    maintainers = serializers.DictField(child=serializers.CharField())
    mirrors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    limits = LimitsSerializer()


class ClaimedSerializer(serializers.Serializer):
    """A claim's answer when there is a job (the shape :func:`payload` builds)."""

    run = serializers.UUIDField()
    lease = LeaseSerializer()
    job = ClaimedJobSerializer()


class NothingToDoSerializer(serializers.Serializer):
    run = serializers.CharField(allow_null=True, help_text="null: nothing to do")
    retry_after = serializers.IntegerField()


def _absolute(request, url: str) -> str:
    return request.build_absolute_uri(url) if url.startswith("/") else url


def payload(run: Run, request) -> dict:
    """The claim answer for ``run`` (docs/protocol.md, Claim): everything the slave needs."""
    job = run.job
    tree_url = settings.AUTOTUA_TREE_URL or request.build_absolute_uri("/tree/")
    keep = ("index", "jobuild", "path", "digest", "inherited", "src_uri", "portconf_uri", "parameters")
    return {
        "run": str(run.uuid),
        "lease": run.lease(),
        "job": {
            "id": job.pk, "attempt": run.attempt, "root": job.root, "arch": job.arch, "stage3": job.stage3,
            "tree": {"url": tree_url, "revision": job.revision.revision_id, "revno": job.revision.revno},
            "snapshot": job.snapshot_pin,
            "plan": [{k: e.get(k, {}) if k == "parameters" else e[k] for k in keep} for e in job.plan],
            "maintainers": job.maintainers,
            "mirrors": {name: [_absolute(request, u) for u in urls]
                        for name, urls in settings.AUTOTUA_MIRRORS.items()},
            "limits": {"phase_timeout": settings.AUTOTUA_PHASE_TIMEOUT,
                       "log_chunk_bytes": settings.AUTOTUA_LOG_CHUNK_BYTES,
                       "attachment_bytes": settings.AUTOTUA_ATTACHMENT_BYTES},
        },
    }


class PhaseSerializer(serializers.Serializer):
    name = serializers.RegexField(r"\A[a-z_][a-z0-9_]{0,63}\Z")
    status = serializers.ChoiceField(["passed", "failed", "skipped"])
    exit_code = serializers.IntegerField(required=False, allow_null=True, default=None, **EXIT_CODE)
    started = Instant(required=False, allow_null=True, default=None)
    finished = Instant(required=False, allow_null=True, default=None)


class ResultAttachmentSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    label = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    size = serializers.IntegerField(**SIZE)
    sha256 = serializers.RegexField(r"\A[0-9a-f]{64}\Z")


class ResultSerializer(Shape):
    status = serializers.ChoiceField(["passed", "failed"])
    exit_code = serializers.IntegerField(required=False, allow_null=True, default=None, **EXIT_CODE)
    started = Instant(required=False, allow_null=True, default=None)
    finished = Instant(required=False, allow_null=True, default=None)
    phases = PhaseSerializer(many=True, required=False, default=list, max_length=64)
    results = serializers.DictField(child=serializers.CharField(allow_blank=True, max_length=4096),
                                    required=False, default=dict)
    attachments = ResultAttachmentSerializer(many=True, required=False, default=list, max_length=1000)
    log_size = serializers.IntegerField(**SIZE)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="",
                                   validators=[lambda v: _text_value(v)],
                                   help_text="a failed jobuild: what more than its phase the slave knows (a limit "
                                             "it hit, a timeout); the job's reason ends with it")

    def validate_results(self, value: dict) -> dict:
        if len(value) > 1000:
            raise serializers.ValidationError("at most 1000 result values")
        long = next((k for k in value if len(k) > 200), None)
        if long is not None:
            raise serializers.ValidationError(f"a result key is at most 200 characters ({long[:40]!r}...)")
        return value

    def validate(self, data: dict) -> dict:
        names = [a["name"] for a in data["attachments"]]
        if len(names) != len(set(names)):
            raise serializers.ValidationError({"attachments": "an attachment is named twice"})
        return data


class FinishedJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.CharField()


class ActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(["continue", "wait", "abort"])
    retry_after = serializers.IntegerField(required=False)
    reason = serializers.CharField(required=False)
    lease = LeaseSerializer(required=False)
    finished = serializers.BooleanField(required=False, help_text="this result decided the job and finished "
                                                                  "the run: no finish call is needed")
    job = FinishedJobSerializer(required=False, help_text="with finished: the job's state now")


class FinishSerializer(Shape):
    status = serializers.ChoiceField(["passed", "failed", "error", "cancelled"])
    reason = serializers.CharField(required=False, allow_blank=True, max_length=10000, default="")


# -- people -----------------------------------------------------------------------------------------
def _snapshot_date(value: str) -> str:
    from autotua_master.snapshots.models import normalise_date

    if not value:
        return ""
    try:
        return normalise_date(value)
    except ValueError as e:
        raise serializers.ValidationError(str(e)) from None


def _text_value(value: str) -> str:
    """A parameter value the database can hold: no lone surrogate (NUL is DRF's own refusal)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise serializers.ValidationError("not valid Unicode (a lone surrogate?)") from None
    return value


class ParametersField(serializers.DictField):
    """``{"name": "value", ...}``: at most 32, each value text of at most 4096 characters (what each
    must be is the jobuild's to say: validation checks it, and a bad one makes the job invalid)."""

    def __init__(self, **kw):
        from autotua.params import MAX_VALUE

        kw.setdefault("required", False)
        kw.setdefault("default", dict)
        super().__init__(child=serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=MAX_VALUE,
                                                     validators=[_text_value]), **kw)

    def to_internal_value(self, data):
        from autotua.params import MAX_PARAMETERS

        value = super().to_internal_value(data)
        if len(value) > MAX_PARAMETERS:
            raise serializers.ValidationError(f"at most {MAX_PARAMETERS} parameters")
        for k in value:
            if len(k) > 64 or "\0" in k:
                raise serializers.ValidationError(f"{k[:64]!r}...: not a parameter name")
            _text_value(k)
        return value


class JobCreateSerializer(serializers.Serializer):
    root = serializers.CharField(max_length=255)
    parameters = ParametersField(help_text="the root jobuild's parameter values (its PARAMETERS say which)")
    revision = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")
    arch = Word(required=False, allow_blank=True, default="")
    stage3 = Word(required=False, allow_blank=True, default="")
    snapshot = serializers.CharField(required=False, allow_blank=True, max_length=10, default="",
                                     validators=[_snapshot_date],
                                     help_text="the Gentoo repository snapshot (YYYYMMDD); default: the newest")
    notify = serializers.BooleanField(required=False, default=False,
                                      help_text="email the owner (their account's address) when the job ends")

    def validate_root(self, value: str) -> str:
        try:
            Atom.parse(value)
        except AtomError as e:
            raise serializers.ValidationError(str(e)) from None
        return value.strip()


class RevalidateSerializer(serializers.Serializer):
    revision = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")
    snapshot = serializers.CharField(required=False, allow_blank=True, max_length=10, validators=[_snapshot_date],
                                     help_text="pin to this snapshot (YYYYMMDD; \"\": the newest); absent: the one "
                                               "named before, else the newest")


class RerunSerializer(serializers.Serializer):
    notify = serializers.BooleanField(required=False, allow_null=True, default=None,
                                      help_text="email when the new job ends (default: as the job rerun)")


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=1000, default="")


class ResultReadSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobuildResult
        fields = ["index", "jobuild", "digest", "status", "exit_code", "started", "finished", "phases", "results",
                  "attachments", "log_size", "received"]


class RunInputsReadSerializer(serializers.Serializer):
    stage3 = serializers.DictField()
    revision = serializers.CharField()
    repository = serializers.DictField()
    emerge_info = serializers.CharField(allow_null=True)
    received = serializers.DateTimeField()
    updated = serializers.DateTimeField()


class RunReadSerializer(serializers.ModelSerializer):
    slave = serializers.CharField(source="slave.name")
    results = ResultReadSerializer(many=True, read_only=True)
    logs = serializers.SerializerMethodField()
    inputs = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = ["uuid", "slave", "attempt", "claimed", "lease_expires", "ended", "end", "end_reason", "inputs",
                  "results", "logs"]

    def get_logs(self, run: Run) -> dict[str, int]:
        return {str(log.index): log.size for log in run.logs.all()}

    @extend_schema_field(RunInputsReadSerializer(allow_null=True))
    def get_inputs(self, run: Run) -> dict | None:
        """What the run was made of, as the slave recorded it (None until it did)."""
        try:
            inputs = run.inputs
        except RunInputs.DoesNotExist:
            return None
        return RunInputsReadSerializer(inputs.as_json()).data


class JobListSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", default=None, allow_null=True, read_only=True)
    revno = serializers.IntegerField(source="revision.revno")
    parameters = serializers.DictField(source="values", child=serializers.CharField(), read_only=True,
                                       help_text="the root jobuild's values, checked, defaults filled in (as asked "
                                                 "while it is invalid)")
    label = serializers.CharField(read_only=True, help_text="the root with its values: user/name-ver[a=x]")

    class Meta:
        model = Job
        fields = ["id", "root", "parameters", "label", "arch", "stage3", "state", "reason", "owner", "automatic",
                  "revno", "attempts", "group", "row", "second_opinion_of", "created", "finished", "notify",
                  "rerun_of"]


class ProgressSerializer(serializers.Serializer):
    run = serializers.UUIDField()
    index = serializers.IntegerField()
    jobuild = serializers.CharField()
    phase = serializers.CharField(allow_null=True, help_text="from the phase headers in its log so far")


class JobSerializer(JobListSerializer):
    revision = serializers.CharField(source="revision.revision_id")
    snapshot = SnapshotRefSerializer(source="snapshot_pin", allow_null=True, read_only=True,
                                     help_text="the Gentoo repository snapshot the job is pinned to (null: none)")
    sidepends = serializers.SerializerMethodField()
    runs = RunReadSerializer(many=True, read_only=True)
    progress = serializers.SerializerMethodField(help_text="where a running job is: its jobuild and phase")
    deletable = serializers.BooleanField(read_only=True)

    class Meta(JobListSerializer.Meta):
        fields = [*JobListSerializer.Meta.fields, "parameters_asked", "revision", "snapshot", "snapshot_asked",
                  "frozen", "max_attempts", "validated", "accepted", "queued", "plan", "sidepends", "warnings",
                  "errors", "runs", "progress", "deletable"]

    parameters_asked = serializers.DictField(source="parameters", child=serializers.CharField(), read_only=True)

    @extend_schema_field(ProgressSerializer(allow_null=True))
    def get_progress(self, job: Job) -> dict | None:
        run = next((r for r in job.runs.all() if r.ended is None), None)
        if run is None:
            return None
        done = len(run.results.all())
        if done >= len(job.plan):
            return None
        log = next((lg for lg in run.logs.all() if lg.index == done), None)
        return {"run": str(run.uuid), "index": done, "jobuild": job.plan[done]["jobuild"],
                "phase": log.current_phase if log else None}

    def get_sidepends(self, job: Job) -> list[dict]:
        """The SIDEPEND requirements with where each stands, and the job the master runs for it."""
        out = []
        reqs = {(r.required_by, r.atom): r for r in job.requirements.select_related("provision")}
        for s in job.sidepends:
            r = reqs.get((s["required_by"], s["atom"]))
            p = r.provision if r else None
            out.append({**s, "state": p.state if p else None, "provider": p.provider_id if p else None,
                        "reason": p.reason if p else ""})
        return out
