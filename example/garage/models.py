"""Cars, engines and cylinders: a change to a cylinder is part of its engine's and car's history."""

from django.db import models

from revy.contrib.django.models import CASCADE


class Car(models.Model):
    manufacturer = models.CharField(max_length=50)
    model = models.CharField(max_length=50, blank=True, default="")

    def __str__(self):
        return f"{self.manufacturer} {self.model}".strip()


class Engine(models.Model):
    car = models.OneToOneField(Car, on_delete=CASCADE, related_name="engine")
    num_cylinders = models.IntegerField(default=4)
    fuel = models.CharField(max_length=20, default="petrol")

    def __str__(self):
        return f"Engine of {self.car}"

    def get_event_aggregates(self):
        return (self.car,)


class Cylinder(models.Model):
    """Its aggregate, the engine, comes from REVY_AGGREGATES in the settings."""

    engine = models.ForeignKey(Engine, on_delete=CASCADE, related_name="cylinders")
    position = models.PositiveSmallIntegerField()
    volume_cc = models.PositiveIntegerField(default=500)

    def __str__(self):
        return f"Cylinder {self.position} of {self.engine}"
