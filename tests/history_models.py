"""The history models the tests run with: revy's own, or custom ones swapped in with
REVY_*_MODEL (`tests.settings_custom_history`). Import them from here, never from
`revy.contrib.django.models`, so that every test runs with both."""

from revy.contrib.django.utils import (
    get_attribute_delta_model,
    get_object_delta_model,
    get_revision_model,
)

AttributeDelta = get_attribute_delta_model()
ObjectDelta = get_object_delta_model()
Revision = get_revision_model()

__all__ = ["AttributeDelta", "ObjectDelta", "Revision"]
