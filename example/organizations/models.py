from django.conf import settings
from django.db import models

from revy.contrib.django.models import CASCADE


class Organization(models.Model):
    """A company users act for: its changes are recorded with the organization as actor."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)

    def __str__(self):
        return self.name


class Membership(models.Model):
    organization = models.ForeignKey(Organization, on_delete=CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=CASCADE, related_name="+")
    role = models.CharField(max_length=20, default="member")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="one_membership")
        ]

    def __str__(self):
        return f"{self.user} in {self.organization}"
