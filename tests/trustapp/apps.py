from django.apps import AppConfig


class TrustAppConfig(AppConfig):
    name = "tests.trustapp"
    label = "trustapp"
    default_auto_field = "django.db.models.BigAutoField"
