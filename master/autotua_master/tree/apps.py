from django.apps import AppConfig


class TreeConfig(AppConfig):
    name = "autotua_master.tree"
    label = "tree"
    default_auto_field = "django.db.models.BigAutoField"
