from django.apps import AppConfig


class SnapshotsConfig(AppConfig):
    name = "autotua_master.snapshots"
    label = "snapshots"
    verbose_name = "Gentoo repository snapshots"
    default_auto_field = "django.db.models.BigAutoField"
