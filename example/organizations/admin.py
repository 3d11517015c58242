"""Admin for organizations and memberships, with revy's history page."""

from django.contrib import admin

from example.organizations.models import Membership, Organization
from revy.contrib.django.admin import HistoryAdminMixin


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)


@admin.register(Organization)
class OrganizationAdmin(HistoryAdminMixin, admin.ModelAdmin):
    list_display = ("name", "slug")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(HistoryAdminMixin, admin.ModelAdmin):
    list_display = ("user", "organization", "role")
    list_filter = ("organization", "role")
    list_select_related = ("user", "organization")
    autocomplete_fields = ("user", "organization")
