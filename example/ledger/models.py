from decimal import ROUND_HALF_UP, Decimal

from django.db import models

from revy import Context
from revy.contrib.django.models import CASCADE, SET_NULL


class Account(models.Model):
    organization = models.ForeignKey(
        "organizations.Organization", on_delete=CASCADE, related_name="accounts"
    )
    name = models.CharField(max_length=100)
    currency = models.CharField(max_length=3, default="EUR")

    def __str__(self):
        return self.name


class Transaction(models.Model):
    """A booking whose `local_amount` the system corrects (the source README's example)."""

    account = models.ForeignKey(Account, on_delete=CASCADE, related_name="transactions")
    counterparty = models.ForeignKey(
        Account, null=True, blank=True, on_delete=SET_NULL, related_name="+"
    )
    memo = models.CharField(max_length=200, blank=True, default="")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    exchange_rate = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(1))
    local_amount = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal(0))
    booked_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.amount} {self.memo}".strip()

    def correct_local_amount(self) -> None:
        """Recompute local_amount as the system, so history shows who really set it."""
        local_amount = (self.amount * self.exchange_rate).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )
        if self.local_amount != local_amount:
            with (
                Context.via_actor(None),
                Context.via_attribute_delta_description("Corrected by the system."),
            ):
                self.local_amount = local_amount
