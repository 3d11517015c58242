"""Models the recovery tests need beyond testapp's: relations a deletion cascades along."""

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models

from revy.contrib.django.models import CASCADE, SET_NULL


class Post(models.Model):
    """Its comments are deleted with it through a generic relation."""

    title = models.CharField(max_length=50)
    comments = GenericRelation("Comment")

    def __str__(self):
        return self.title


class Comment(models.Model):
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.PositiveIntegerField()
    target = GenericForeignKey("content_type", "object_id")
    text = models.CharField(max_length=50)


class Reply(models.Model):
    """Refers to two rows a deletion may take along: re-created after both."""

    post = models.ForeignKey(Post, on_delete=CASCADE, related_name="replies")
    comment = models.ForeignKey(Comment, on_delete=CASCADE, related_name="replies")
    # Cleared, not deleted, when the quoted post goes.
    quoting = models.ForeignKey(
        Post, null=True, blank=True, on_delete=SET_NULL, related_name="quotes"
    )
