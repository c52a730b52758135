from django.apps import AppConfig


class SlavesConfig(AppConfig):
    name = "autotua_master.slaves"
    label = "slaves"
    default_auto_field = "django.db.models.BigAutoField"
