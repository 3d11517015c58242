from django.apps import AppConfig


class OrganizationsConfig(AppConfig):
    name = "example.organizations"
    label = "organizations"
