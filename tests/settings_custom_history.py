"""revy's test settings with custom history models swapped in (REVY_*_MODEL)."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.customhistory"]

REVY_REVISION_MODEL = "customhistory.AuditRevision"
REVY_OBJECT_DELTA_MODEL = "customhistory.AuditDelta"
REVY_ATTRIBUTE_DELTA_MODEL = "customhistory.AuditAttribute"
