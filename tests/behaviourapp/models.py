"""Models for the tests of Django behaviour that installing revy must keep.

Each model reproduces, in the smallest form, a kind of model from Django's own test suite on
which revy changed Django's behaviour (see tests/contrib/django/test_django_behaviour.py).
"""

from django.db import models


class Label(models.Model):
    name = models.CharField(max_length=50)


class Thing(models.Model):
    """A row with a unique name, a foreign key and an automatic many-to-many through model."""

    name = models.CharField(max_length=50, unique=True)
    rank = models.IntegerField(default=0)
    seen = models.DateTimeField(null=True, blank=True)
    label = models.ForeignKey(
        Label, null=True, blank=True, on_delete=models.SET_NULL, related_name="featured"
    )
    labels = models.ManyToManyField(Label, blank=True, related_name="things")


class Pair(models.Model):
    """Django 5.2's composite primary key."""

    pk = models.CompositePrimaryKey("left", "right")
    left = models.IntegerField()
    right = models.IntegerField()
    note = models.CharField(max_length=50, blank=True)


class Team:
    """A Python value that is not JSON: stored as its title (as in Django's serializers tests)."""

    def __init__(self, title: str) -> None:
        self.title = title

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Team) and other.title == self.title

    def __hash__(self) -> int:
        return hash(self.title)


class TeamField(models.CharField):
    """A custom field whose Python value is a `Team`; the database holds the title."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("max_length", 100)
        super().__init__(*args, **kwargs)

    def get_db_prep_save(self, value, connection):
        return None if value is None else str(value.title)

    def to_python(self, value):
        if value is None or isinstance(value, Team):
            return value
        return Team(value)

    def from_db_value(self, value, expression, connection):
        return None if value is None else Team(value)

    def value_to_string(self, obj):
        value = self.value_from_object(obj)
        return None if value is None else value.title


class Player(models.Model):
    name = models.CharField(max_length=50)
    team = TeamField(null=True)


class Wrapped:
    """A value whose str() is not text (as MyWrapper in Django's custom_pk tests)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __str__(self):
        return self.value

    # Like MyWrapper, it defines __eq__ without __hash__: it cannot be a dict key.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Wrapped) and other.value == self.value


class WrappedAutoField(models.BigAutoField):
    """An automatic primary key whose Python value is a `Wrapped` (as custom_pk's MyAutoField)."""

    def from_db_value(self, value, expression, connection):
        return None if value is None else Wrapped(value)

    def get_prep_value(self, value):
        if isinstance(value, Wrapped):
            value = value.value
        return super().get_prep_value(value)


class WrappedIntegerField(models.IntegerField):
    """An integer column whose Python value is a `Wrapped`."""

    def from_db_value(self, value, expression, connection):
        return None if value is None else Wrapped(value)

    def to_python(self, value):
        if value is None or isinstance(value, Wrapped):
            return value
        return Wrapped(int(value))

    def get_prep_value(self, value):
        if isinstance(value, Wrapped):
            value = value.value
        return super().get_prep_value(value)


class Ticket(models.Model):
    id = WrappedAutoField(primary_key=True)
    number = WrappedIntegerField()
