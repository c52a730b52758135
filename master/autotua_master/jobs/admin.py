from django.contrib import admin, messages
from django.utils import timezone

from autotua.tree import TreeError
from autotua_master.adminbase import RecordAdmin

from .errors import JobError
from .models import Attachment, Job, JobuildResult, LogFile, Provision, Requirement, Run, RunInputs


class RequirementInline(admin.TabularInline):
    model = Requirement
    fields = ["required_by", "atom", "provision"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0


class ResultInline(admin.TabularInline):
    model = JobuildResult
    fields = ["run", "index", "jobuild", "status", "exit_code", "started", "finished", "results"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "root", "state", "priority", "arch", "stage3", "owner", "revision", "snapshot", "attempts",
                    "created", "reason"]
    list_filter = ["state", "arch", "stage3", "snapshot", ("owner", admin.EmptyFieldListFilter)]
    list_editable = ["priority"]
    search_fields = ["root", "reason", "owner__username", "plan"]
    list_select_related = ["owner", "revision"]
    readonly_fields = ["state", "reason", "revision", "snapshot", "plan", "sidepends", "warnings", "errors",
                       "maintainers", "signers", "turn", "attempts", "created", "validated", "accepted", "queued",
                       "finished", "rerun_of"]
    inlines = [RequirementInline, ResultInline]
    actions = ["cancel", "requeue", "revalidate", "rerun"]
    date_hierarchy = "created"

    def has_delete_permission(self, request, obj=None) -> bool:
        """Only jobs that never started (their results stay on record), as in the web UI and the API."""
        return super().has_delete_permission(request, obj) and (obj is None or obj.deletable)

    def delete_model(self, request, obj):
        obj.remove(request.user)

    def delete_queryset(self, request, queryset):
        self._each(request, queryset, "deleted", lambda j: j.remove(request.user))

    def _each(self, request, queryset, verb, fn):
        done = 0
        for job in queryset:
            try:
                fn(job)
                done += 1
            except (JobError, TreeError) as e:
                messages.error(request, f"job #{job.pk}: {e}")
        if done:
            messages.success(request, f"{verb} {done} job(s)")

    @admin.action(description="Cancel the selected jobs")
    def cancel(self, request, queryset):
        self._each(request, queryset, "cancelled", lambda j: j.cancel(by=request.user.username))

    @admin.action(description="Requeue the selected jobs (fresh attempts)")
    def requeue(self, request, queryset):
        self._each(request, queryset, "requeued", lambda j: j.requeue())

    @admin.action(description="Re-validate the selected jobs against the tip")
    def revalidate(self, request, queryset):
        self._each(request, queryset, "re-validated", lambda j: j.revalidate(None))

    @admin.action(description="Rerun the selected jobs (new jobs, the same pins)")
    def rerun(self, request, queryset):
        self._each(request, queryset, "reran", lambda j: j.rerun(request.user))


@admin.register(Provision)
class ProvisionAdmin(admin.ModelAdmin):
    list_display = ["jobuild", "digest", "state", "provider", "updated", "reason"]
    list_filter = ["state"]
    search_fields = ["jobuild", "digest"]
    readonly_fields = ["jobuild", "digest", "passed_by", "updated"]
    raw_id_fields = ["provider"]


@admin.register(Requirement)
class RequirementAdmin(admin.ModelAdmin):
    list_display = ["job", "required_by", "atom", "provision"]
    list_filter = ["provision__state"]
    search_fields = ["atom", "required_by", "provision__jobuild"]
    raw_id_fields = ["job", "provision"]


@admin.register(JobuildResult)
class JobuildResultAdmin(RecordAdmin):
    list_display = ["job", "index", "jobuild", "status", "exit_code", "run", "received"]
    list_filter = ["status"]
    search_fields = ["jobuild", "digest"]
    raw_id_fields = ["job", "run"]
    readonly_fields = [f.name for f in JobuildResult._meta.fields]


@admin.register(LogFile)
class LogFileAdmin(RecordAdmin):
    list_display = ["run", "index", "size", "updated"]
    raw_id_fields = ["run"]
    readonly_fields = ["run", "index", "size", "updated"]


@admin.register(Attachment)
class AttachmentAdmin(RecordAdmin):
    list_display = ["name", "run", "index", "size", "sha256", "label", "created"]
    search_fields = ["name", "sha256", "label"]
    raw_id_fields = ["run"]
    readonly_fields = ["run", "index", "name", "size", "sha256", "created"]


class LiveFilter(admin.SimpleListFilter):
    title = "live"
    parameter_name = "live"

    def lookups(self, request, model_admin):
        return [("yes", "live"), ("no", "over"), ("expired", "lease expired")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.live()
        if self.value() == "no":
            return queryset.exclude(ended=None)
        if self.value() == "expired":
            return queryset.expired(timezone.now())
        return queryset


@admin.register(Run)
class RunAdmin(RecordAdmin):
    list_display = ["uuid", "job", "slave", "attempt", "claimed", "lease_expires", "waiting_since", "ended", "end"]
    list_filter = [LiveFilter, "end", "slave"]
    search_fields = ["uuid", "job__root", "slave__name"]
    list_select_related = ["job", "slave"]
    readonly_fields = [f.name for f in Run._meta.fields]
    date_hierarchy = "claimed"


@admin.register(RunInputs)
class RunInputsAdmin(RecordAdmin):
    list_display = ["run", "stage3_name", "revision", "repository_used", "received"]
    search_fields = ["run__uuid", "revision", "stage3", "repository"]
    raw_id_fields = ["run"]
    readonly_fields = [f.name for f in RunInputs._meta.fields]

    @admin.display(description="stage3")
    def stage3_name(self, obj: RunInputs) -> str:
        return obj.stage3.get("name", "")

    @admin.display(description="repository")
    def repository_used(self, obj: RunInputs) -> str:
        r = obj.repository
        return {"snapshot": f"snapshot {r.get('snapshot')}", "host": f"host {r.get('path')}"}.get(r.get("source"),
                                                                                                   "none")
