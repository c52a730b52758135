from django.contrib import admin, messages

from autotua_master.jobs.models import Run

from .models import Slave, SlaveState


class RunInline(admin.TabularInline):
    model = Run
    fields = ["uuid", "job", "attempt", "claimed", "lease_expires", "ended", "end", "end_reason"]
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False
    max_num = 0


@admin.register(Slave)
class SlaveAdmin(admin.ModelAdmin):
    list_display = ["name", "state", "arch", "flavours", "version", "free_disk", "last_seen", "created"]
    list_filter = ["state", "arch"]
    search_fields = ["name", "host"]
    readonly_fields = ["token_digest", "host", "free_disk", "version", "trust", "created", "last_seen",
                       "approved_by"]
    actions = ["approve", "revoke", "new_token"]
    inlines = [RunInline]

    @admin.action(description="Approve the selected slaves")
    def approve(self, request, queryset):
        n = 0
        for slave in queryset.exclude(state=SlaveState.ACTIVE):
            slave.approve(by=request.user)
            n += 1
        messages.success(request, f"approved {n} slave(s)")

    @admin.action(description="Revoke the selected slaves' tokens")
    def revoke(self, request, queryset):
        n = queryset.exclude(state=SlaveState.REVOKED).update(state=SlaveState.REVOKED)
        messages.success(request, f"revoked {n} slave(s)")

    @admin.action(description="Make a new token (shown once)")
    def new_token(self, request, queryset):
        for slave in queryset:
            messages.warning(request, f"new token for {slave}: {slave.new_token()} (shown only now)")
