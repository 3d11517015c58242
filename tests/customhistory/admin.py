"""revy registers its admins for its own history models only; a project with custom ones
registers them with revy's admin classes, as here."""

from django.contrib import admin

from revy.contrib.django.admin import ObjectDeltaAdmin, RevisionAdmin
from tests.customhistory.models import AuditDelta, AuditRevision

admin.site.register(AuditRevision, RevisionAdmin)
admin.site.register(AuditDelta, ObjectDeltaAdmin)
