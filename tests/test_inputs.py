"""`revy_api.inputs`: whatever a client sends, a value the database accepts or `BadRequest`.

Model-free properties, checked against the real database: every value a parser returns can
be used in a query on SQLite and PostgreSQL without an error.
"""

from __future__ import annotations

import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revy.contrib.django.utils import get_object_delta_model
from revy_api import inputs
from revy_api.errors import BadRequest
from tests.testapp.models import Book, Stamped

pytestmark = pytest.mark.django_db

ANYTHING = st.one_of(
    st.text(max_size=80),
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(),
    st.lists(st.integers(), max_size=3),
    st.sampled_from(["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "2024-02-30"]),
)
SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _refused_or(parse, value):
    try:
        return parse(value)
    except BadRequest as error:
        assert error.detail and error.extra.get("field")
        return None


@given(value=ANYTHING)
@SETTINGS
def test_moments_are_aware_and_convertible_to_utc(value):
    moment = _refused_or(lambda v: inputs.moment(v, "at"), value)
    if moment is not None:
        assert moment.utcoffset() == datetime.timedelta(0)  # PostgreSQL takes offsets to 15:59
        assert get_object_delta_model().objects.filter(created_at__lte=moment).count() == 0
        moment.astimezone(datetime.UTC)


@given(value=ANYTHING)
@SETTINGS
def test_texts_and_actors_can_be_queried(value):
    text = _refused_or(lambda v: inputs.text(v, "event_type"), value)
    if text is not None:
        assert not get_object_delta_model().objects.filter(event_type=text).exists()
    actor = _refused_or(inputs.actor, value)
    if actor is not None and actor[0] is not None:
        assert not get_object_delta_model().objects.filter(actor_id=actor[1]).exists()


@given(value=ANYTHING, model=st.sampled_from([Book, Stamped]))
@SETTINGS
def test_primary_keys_can_be_queried(value, model):
    pk = _refused_or(lambda v: inputs.primary_key(model, v), value)
    if pk is not None:
        assert not model.objects.filter(pk=pk).exists()
        assert not model.objects.filter(pk__in=[pk]).exists()


@given(value=ANYTHING)
@SETTINGS
def test_row_ids_fit_in_64_bits(value):
    number = inputs.row_id(value)
    if number is not None:
        assert 1 <= number <= 2**63 - 1
        assert not Book.objects.filter(pk__in=[number]).exists()


@pytest.mark.parametrize("depth", [1, inputs.MAX_JSON_DEPTH])
def test_json_nested_up_to_the_limit_is_accepted(depth):
    value: object = 1
    for _ in range(depth):
        value = [value]
    assert inputs.check_json_depth(value) == value


def test_json_nested_deeper_is_refused():
    value: object = {}
    for _ in range(inputs.MAX_JSON_DEPTH):
        value = {"a": [value]}
    with pytest.raises(BadRequest):
        inputs.check_json_depth(value)
