"""Custom history models, as a project swaps them in with REVY_*_MODEL (see the README).

The app sorts after revy in INSTALLED_APPS on purpose: revy's migrations must wait for it.
"""

from django.db import models

from revy.contrib.django.models import (
    AbstractAttributeDelta,
    AbstractObjectDelta,
    AbstractRevision,
)


class AuditRevision(AbstractRevision):
    ticket = models.CharField(max_length=20, blank=True, default="")


class AuditDelta(AbstractObjectDelta):
    class Meta(AbstractObjectDelta.Meta):
        indexes = [
            models.Index(fields=["content_type", "content_id", "id"], name="audit_delta_content"),
            models.Index(fields=["actor_type", "actor_id"], name="audit_delta_actor"),
            models.Index(fields=["event_type"], name="audit_delta_event_type"),
            models.Index(fields=["created_at"], name="audit_delta_created"),
            models.Index(fields=["transaction_id", "id"], name="audit_delta_feed"),
        ]


class AuditAttribute(AbstractAttributeDelta):
    class Meta(AbstractAttributeDelta.Meta):
        indexes = [
            models.Index(fields=["actor_type", "actor_id"], name="audit_attribute_actor"),
        ]
