"""Models revy's tests exercise: plain fields, relations, cascades, aggregates, secrets."""

import uuid

from django.conf import settings
from django.db import models

from revy.contrib.django.models import CASCADE, SET, SET_DEFAULT, SET_NULL


class Author(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField(blank=True, default="")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=CASCADE, related_name="+"
    )

    def __str__(self):
        return self.name


class Book(models.Model):
    author = models.ForeignKey(Author, on_delete=CASCADE, related_name="books")
    title = models.CharField(max_length=200)
    pages = models.IntegerField(default=0)
    price = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    published = models.DateField(null=True, blank=True)
    tags = models.ManyToManyField("Tag", blank=True, related_name="books")

    def __str__(self):
        return self.title


class Review(models.Model):
    book = models.ForeignKey(Book, on_delete=CASCADE, related_name="reviews")
    text = models.TextField()


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)


def default_author():
    return None


class Note(models.Model):
    """Deletion handlers that keep the row: SET_NULL, SET_DEFAULT and SET."""

    text = models.CharField(max_length=100)
    author = models.ForeignKey(Author, null=True, blank=True, on_delete=SET_NULL, related_name="+")
    editor = models.ForeignKey(
        Author, null=True, blank=True, default=None, on_delete=SET_DEFAULT, related_name="+"
    )
    reviewer = models.ForeignKey(
        Author, null=True, blank=True, on_delete=SET(default_author), related_name="+"
    )


class Ledger(models.Model):
    """The source README's collaborative example: the system corrects local_amount."""

    amount = models.DecimalField(max_digits=12, decimal_places=2)
    exchange_rate = models.DecimalField(max_digits=12, decimal_places=4, default=1)
    local_amount = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    memo = models.CharField(max_length=100, blank=True, default="")


class Stamped(models.Model):
    """Values Django sets during save(): uuid pk default, auto_now, auto_now_add."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    label = models.CharField(max_length=50)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    payload = models.JSONField(default=dict, blank=True)
    blob = models.BinaryField(null=True, blank=True)
    duration = models.DurationField(null=True, blank=True)


class Secret(models.Model):
    name = models.CharField(max_length=50)
    pin = models.CharField(max_length=10)
    internal = models.CharField(max_length=50, blank=True, default="")


class Untracked(models.Model):
    name = models.CharField(max_length=50)


class Car(models.Model):
    manufacturer = models.CharField(max_length=50)


class Engine(models.Model):
    car = models.OneToOneField(Car, on_delete=CASCADE, related_name="engine")
    num_cylinders = models.IntegerField(default=4)

    def get_event_aggregates(self):
        return (self.car,)


class Cylinder(models.Model):
    engine = models.ForeignKey(Engine, on_delete=CASCADE, related_name="cylinders")
    volume = models.IntegerField(default=500)


class Place(models.Model):
    name = models.CharField(max_length=50)


class Restaurant(Place):
    serves_pizza = models.BooleanField(default=False)


class ProxyBook(Book):
    class Meta:
        proxy = True


class Organization(models.Model):
    """An actor that is not a user: members may act as it through X-Perform-As-Organization."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")

    def __str__(self):
        return self.name


class Club(models.Model):
    """A many-to-many relation through a model of its own."""

    name = models.CharField(max_length=50)
    members = models.ManyToManyField(Author, through="Membership", related_name="clubs")


class Membership(models.Model):
    club = models.ForeignKey(Club, on_delete=models.CASCADE)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    role = models.CharField(max_length=20, default="member")


class Person(models.Model):
    """A symmetrical many-to-many relation to the same model."""

    name = models.CharField(max_length=50)
    friends = models.ManyToManyField("self", symmetrical=True, blank=True)


class Size:
    """A value of a custom field type that JSON cannot encode."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height

    def __eq__(self, other):
        return isinstance(other, Size) and (self.width, self.height) == (other.width, other.height)

    def __hash__(self):
        return hash((self.width, self.height))

    def __str__(self):
        return f"{self.width}x{self.height}"


class SizeField(models.CharField):
    """Stores a `Size` as "WxH" text."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 20)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        return self.to_python(value)

    def to_python(self, value):
        if value is None or isinstance(value, Size):
            return value
        width, height = str(value).split("x")
        return Size(int(width), int(height))

    def get_prep_value(self, value):
        return None if value is None else str(value)


class Measured(models.Model):
    size = SizeField()


class Enrollment(models.Model):
    """A composite primary key (Django 5.2+)."""

    pk = models.CompositePrimaryKey("club", "seat")
    club = models.ForeignKey(Club, on_delete=CASCADE)
    seat = models.CharField(max_length=10)
    note = models.CharField(max_length=50, blank=True, default="")
