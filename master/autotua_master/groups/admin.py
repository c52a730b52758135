from django.contrib import admin, messages

from autotua_master.jobs.models.job import JobError

from . import actions, cells
from .models import Group


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "kind", "bug", "root", "owner", "snapshot", "seed", "created", "state"]
    list_filter = ["kind", "snapshot"]
    search_fields = ["title", "root", "owner__username"]
    list_select_related = ["owner", "revision"]
    readonly_fields = ["kind", "root", "revision", "snapshot", "seed", "request", "rows", "columns", "created",
                       "state"]
    actions = ["cancel", "rerun"]

    @admin.display(description="state")
    def state(self, group: Group) -> str:
        m = cells.load(group)
        return f"{m.state} ({', '.join(f'{n} {v}' for v, n in m.counts.items())})"

    @admin.action(description="Cancel every job of the selected groups that has not ended")
    def cancel(self, request, queryset):
        n = sum(actions.cancel_group(g, request.user.username) for g in queryset)
        messages.success(request, f"cancelled {n} job(s)")

    @admin.action(description="Rerun what did not pass in the selected groups")
    def rerun(self, request, queryset):
        for g in queryset:
            try:
                made = actions.rerun_group(g, request.user)
                messages.success(request, f"group #{g.pk}: {len(made)} job(s) made")
            except JobError as e:
                messages.error(request, str(e))
