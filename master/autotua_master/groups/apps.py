from django.apps import AppConfig


class GroupsConfig(AppConfig):
    name = "autotua_master.groups"
    label = "groups"
    verbose_name = "Groups of jobs (matrices, arch testing)"
    default_auto_field = "django.db.models.BigAutoField"
