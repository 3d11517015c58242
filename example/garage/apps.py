from django.apps import AppConfig


class GarageConfig(AppConfig):
    name = "example.garage"
    label = "garage"
