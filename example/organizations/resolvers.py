"""The demo's `REVY_API["ORGANIZATION_RESOLVER"]`: members may act as their organization."""

from example.organizations.models import Organization


def member_organization(request, value):
    """Return the organization with slug `value` if the request's user is a member."""
    return Organization.objects.filter(slug=value, memberships__user=request.user).first()
