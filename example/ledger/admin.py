"""Admin for accounts and transactions, with revy's history page."""

from django.contrib import admin

from example.ledger.models import Account, Transaction
from revy.contrib.django.admin import HistoryAdminMixin


@admin.register(Account)
class AccountAdmin(HistoryAdminMixin, admin.ModelAdmin):
    list_display = ("name", "organization", "currency")
    list_filter = ("organization", "currency")
    list_select_related = ("organization",)
    search_fields = ("name",)


@admin.register(Transaction)
class TransactionAdmin(HistoryAdminMixin, admin.ModelAdmin):
    list_display = ("id", "memo", "account", "amount", "exchange_rate", "local_amount", "booked_at")
    list_filter = ("account__organization", "account")
    list_select_related = ("account",)
    search_fields = ("memo",)
    autocomplete_fields = ("account", "counterparty")
    readonly_fields = ("booked_at",)
