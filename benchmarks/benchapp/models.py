"""The benchmark models: an `Item` with the fields a typical business model has."""

from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Item(models.Model):
    """Eight typical fields (plus the key): char, text, int, decimal, bool, datetime, FK."""

    title = models.CharField(max_length=200)
    sku = models.CharField(max_length=40, blank=True)
    description = models.TextField(blank=True)
    quantity = models.IntegerField(default=0)
    price = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField()
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="items")

    def __str__(self) -> str:
        return self.title
