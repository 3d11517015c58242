"""The API plugin as a Django app: add `"revy_api"` to INSTALLED_APPS for its system checks."""

from django.apps import AppConfig

__all__ = ["RevyApiConfig"]


class RevyApiConfig(AppConfig):
    name = "revy_api"
    label = "revy_api"
    verbose_name = "Revisions API"

    def ready(self) -> None:
        from revy_api import checks

        checks.register()
