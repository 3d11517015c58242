from django.apps import AppConfig


class RecoveryAppConfig(AppConfig):
    name = "tests.recoveryapp"
    label = "recoveryapp"
    default_auto_field = "django.db.models.BigAutoField"
