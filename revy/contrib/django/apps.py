from django.apps import AppConfig
from django.conf import settings

from revy.contrib.django.settings import DEFAULTS, NO_CONTENTTYPES, Problem

__all__ = [
    "RevyConfig",
]


# Django's swappable-model machinery (and the migrations it writes) reads these names from
# settings directly, so give them revy's defaults when the project does not set them.
for _name in ("REVY_REVISION_MODEL", "REVY_OBJECT_DELTA_MODEL", "REVY_ATTRIBUTE_DELTA_MODEL"):
    if not hasattr(settings, _name):
        setattr(settings, _name, DEFAULTS[_name])

CONTENTTYPES_MISSING = Problem(
    NO_CONTENTTYPES,
    "revy needs django.contrib.contenttypes, which is not in INSTALLED_APPS: its history "
    "tables refer to content types.",
    'Add "django.contrib.contenttypes" to INSTALLED_APPS, before "revy.contrib.django".',
)


class RevyConfig(AppConfig):
    name = "revy.contrib.django"
    label = "revy"
    verbose_name = "Revisions"
    default_auto_field = "django.db.models.BigAutoField"

    def import_models(self) -> None:
        # Without contenttypes, importing revy's models fails with a RuntimeError that does
        # not say what to do, before any system check can run.
        if self.apps is not None and not self.apps.is_installed("django.contrib.contenttypes"):
            raise CONTENTTYPES_MISSING.error()
        super().import_models()

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        # events registers its recorder hook (aggregates, listeners) when imported.
        from revy.contrib.django import checks, events, hooks, renames, tasks  # noqa: F401

        # Settings are not validated here: an exception would hide every problem but the
        # first, and the system checks (revy.E001...) report them all with a hint.
        checks.register()
        hooks.install()
        tasks.install()
        post_migrate.connect(renames.on_post_migrate, sender=self, dispatch_uid="revy.renames")
