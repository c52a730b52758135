from django.contrib import admin

from .models import Snapshot


@admin.register(Snapshot)
class SnapshotAdmin(admin.ModelAdmin):
    list_display = ["date", "listed", "latest", "first_seen", "last_seen"]
    list_filter = ["listed", "latest"]
    search_fields = ["date"]
    readonly_fields = ["first_seen", "last_seen"]
