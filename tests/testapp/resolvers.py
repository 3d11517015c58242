"""The test suite's REVY_API["ORGANIZATION_RESOLVER"]: members may act as their organization."""

from tests.testapp.models import Organization


def member_organization(request, value):
    return Organization.objects.filter(slug=value, members=request.user).first()
