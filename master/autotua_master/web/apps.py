from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "autotua_master.web"
    label = "web"
