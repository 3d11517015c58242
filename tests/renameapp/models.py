"""A model whose fields were renamed by a migration (see migrations/0002)."""

from django.conf import settings
from django.db import models


class Gadget(models.Model):
    title = models.CharField(max_length=50)  # was "label"
    maker = models.ForeignKey(  # was "owner"
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
