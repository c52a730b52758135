from django.contrib import admin, messages

from autotua_master.adminbase import RecordAdmin

from .models import Maintainer, Revision
from .validation import index_revision


@admin.register(Maintainer)
class MaintainerAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "fingerprint", "created"]
    search_fields = ["name", "user__username", "user__email", "fingerprint"]
    autocomplete_fields = ["user"]


@admin.register(Revision)
class RevisionAdmin(RecordAdmin):
    list_display = ["revno", "revision_id", "created", "indexed", "jobuild_count"]
    search_fields = ["revision_id"]
    readonly_fields = ["revision_id", "revno", "created", "indexed", "jobuilds"]
    actions = ["reindex"]

    @admin.display(description="jobuilds")
    def jobuild_count(self, rev: Revision) -> int:
        return len(rev.jobuilds)

    @admin.action(description="Index the selected revisions again")
    def reindex(self, request, queryset):
        for rev in queryset:
            index_revision(rev.revision_id)
        messages.success(request, f"indexed {queryset.count()} revision(s)")
