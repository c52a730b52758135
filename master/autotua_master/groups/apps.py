from django.apps import AppConfig


class GroupsConfig(AppConfig):
    name = "autotua_master.groups"
    label = "groups"
    verbose_name = "Groups of jobs (matrices, arch testing)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from autotua_master.jobs.signals import job_ended

        from .secondopinion import on_job_ended

        job_ended.connect(on_job_ended, dispatch_uid="autotua-second-opinion")
