from django.apps import AppConfig
from django.conf import settings

from revy.contrib.django.settings import DEFAULTS

# Django's swappable-model machinery (and the migrations it writes) reads these names from
# settings directly, so give them revy's defaults when the project does not set them.
for _name in ("REVY_REVISION_MODEL", "REVY_OBJECT_DELTA_MODEL", "REVY_ATTRIBUTE_DELTA_MODEL"):
    if not hasattr(settings, _name):
        setattr(settings, _name, DEFAULTS[_name])


class RevyConfig(AppConfig):
    name = "revy.contrib.django"
    label = "revy"
    verbose_name = "Revisions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from revy.contrib.django import checks, renames, tracking
        from revy.contrib.django import settings as revy_settings

        checks.register()
        revy_settings.validate()
        tracking.install()
        post_migrate.connect(renames.on_post_migrate, sender=self, dispatch_uid="revy.renames")
