"""Every hook revy puts into Django, installed and removed in one place.

`tracking` wraps the model methods (`__init__`, `from_db`, `save_base`, `refresh_from_db`) and
the deletion collector (`Collector.delete`, which `QuerySet.delete()` goes through too); `bulk`
wraps the QuerySet methods that write many rows (`update`, `bulk_create`, `bulk_update`), and
the collector again for deletions one statement records (so it is installed second). The
app installs both when Django is ready; benchmarks remove them to measure Django alone.
"""

from __future__ import annotations

from revy.contrib.django import bulk, tracking

__all__ = ["install", "uninstall"]


def install() -> None:
    """Install revy's hooks into Django (idempotent)."""
    tracking.install()
    bulk.install()


def uninstall() -> None:
    """Restore Django's own methods."""
    bulk.uninstall()
    tracking.uninstall()
