from django.apps import AppConfig


class BehaviourAppConfig(AppConfig):
    name = "tests.behaviourapp"
    label = "behaviourapp"
    default_auto_field = "django.db.models.BigAutoField"
