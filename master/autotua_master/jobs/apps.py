from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "autotua_master.jobs"
    label = "jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from autotua_master.tree.models import Maintainer

        from .models.job import restamp

        # jobs carry the keys their slaves verify against: a maintainer's new key reaches them at once
        post_save.connect(lambda instance, **_: restamp(instance.name, instance.fingerprint), sender=Maintainer,
                          weak=False, dispatch_uid="jobs.restamp.saved")
        post_delete.connect(lambda instance, **_: restamp(instance.name, None), sender=Maintainer, weak=False,
                            dispatch_uid="jobs.restamp.deleted")
