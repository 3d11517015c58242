"""Command-line values shared by revy's management commands."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import CommandError
from django.db import models
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import get_current_timezone, is_naive, make_aware

from revy.contrib.django.references import model_for_label, parse_row

__all__ = ["parse_model", "parse_moment", "parse_row_option"]


def parse_moment(value: str, option: str) -> datetime.datetime:
    """Parse an ISO date (midnight, current time zone) or datetime given to `option`."""
    moment = parse_datetime(value)
    if moment is None:
        try:
            day = parse_date(value)
        except ValueError:
            day = None
        if day is None:
            raise CommandError(f"{option} must be an ISO date or datetime, not {value!r}.")
        moment = datetime.datetime.combine(day, datetime.time())
    if is_naive(moment):
        moment = make_aware(moment, get_current_timezone())
    return moment


def parse_model(label: str, option: str) -> type[models.Model]:
    """Parse `app_label.model` given to `option`."""
    try:
        return model_for_label(label)
    except ValueError as error:
        raise CommandError(f"{option}: {error}") from None


def parse_row_option(text: str, option: str) -> tuple[type[models.Model], Any]:
    """Parse `app_label.model:pk` given to `option`."""
    try:
        return parse_row(text)
    except ValueError as error:
        raise CommandError(f"{option}: {error}") from None
