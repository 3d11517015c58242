"""Models of the model-based history test: a small set covering what history must survive.

JSON values, a unique field (upserts), revy's and Django's `on_delete` handlers, M2M through an
automatic, a custom and a symmetrical self through model, multi-table inheritance, a proxy,
UUID, char and composite primary keys, and a value Django sets during `save()` (`auto_now`).
"""

import uuid

from django.db import models

from revy.contrib.django.models import CASCADE, SET_NULL


class Tag(models.Model):
    """A char primary key; a symmetrical self M2M (its through rows hold char keys)."""

    slug = models.CharField(max_length=20, primary_key=True)
    label = models.CharField(max_length=50, blank=True, default="")
    related = models.ManyToManyField("self", blank=True)


class Item(models.Model):
    """A unique field, a JSON value, a decimal with an integer default, an automatic M2M."""

    code = models.CharField(max_length=20, unique=True)
    count = models.IntegerField(default=0)
    amount = models.DecimalField(max_digits=10, decimal_places=4, default=1)
    data = models.JSONField(default=dict, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="items")


class ProxyItem(Item):
    class Meta:
        proxy = True


class Doc(models.Model):
    """A UUID primary key; foreign keys with revy's and Django's deletion handlers."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    serial = models.IntegerField(default=0)  # a stable order for random choices among docs
    title = models.CharField(max_length=50)
    owner = models.ForeignKey(Item, on_delete=CASCADE, related_name="docs")
    reviewer = models.ForeignKey(
        Item, null=True, blank=True, on_delete=SET_NULL, related_name="reviewed_docs"
    )
    source = models.ForeignKey(
        Item, null=True, blank=True, on_delete=models.CASCADE, related_name="sourced_docs"
    )
    editor = models.ForeignKey(
        Item, null=True, blank=True, on_delete=models.SET_NULL, related_name="edited_docs"
    )
    touched = models.DateTimeField(auto_now=True)


class Group(models.Model):
    name = models.CharField(max_length=50)
    members = models.ManyToManyField(Item, through="Membership", related_name="groups")


class Membership(models.Model):
    """A custom through model with a field of its own."""

    group = models.ForeignKey(Group, on_delete=CASCADE)
    item = models.ForeignKey(Item, on_delete=models.CASCADE)
    role = models.CharField(max_length=20, default="member")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "item"], name="trustapp_membership_unique")
        ]


class Place(models.Model):
    name = models.CharField(max_length=50)
    rating = models.IntegerField(default=0)


class Shop(Place):
    """Multi-table inheritance: a change through Place changes the Shop too."""

    open = models.BooleanField(default=True)


class Stock(models.Model):
    """Django's composite primary key (Django 5.2+)."""

    pk = models.CompositePrimaryKey("shop_code", "sku")
    shop_code = models.CharField(max_length=20)
    sku = models.IntegerField()
    quantity = models.IntegerField(default=0)
