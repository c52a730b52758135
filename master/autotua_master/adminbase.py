"""What the apps' admins share (one copy, below every app, so no app's admin imports another's)."""

from django.contrib import admin


class RecordAdmin(admin.ModelAdmin):
    """Records the master makes itself (runs, results, logs, attachments, pinned revisions): read, never
    added by hand (every field is read-only, so an added one could only be an empty, broken record)."""

    records_only = True

    def has_add_permission(self, request) -> bool:
        return False
