from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "example.ledger"
    label = "ledger"
