"""Admin for cars, engines and cylinders, with revy's history page.

A car's history page includes its engine's and cylinders' changes: engines name their car in
`get_event_aggregates()`, cylinders their engine through `REVY_AGGREGATES`.
"""

from django.contrib import admin

from example.garage.models import Car, Cylinder, Engine
from revy.contrib.django.admin import HistoryAdminMixin


class EngineInline(admin.StackedInline):
    model = Engine
    extra = 0


class CylinderInline(admin.TabularInline):
    model = Cylinder
    extra = 0


@admin.register(Car)
class CarAdmin(HistoryAdminMixin, admin.ModelAdmin):
    list_display = ("id", "manufacturer", "model")
    search_fields = ("manufacturer", "model")
    inlines = [EngineInline]


@admin.register(Engine)
class EngineAdmin(HistoryAdminMixin, admin.ModelAdmin):
    list_display = ("id", "car", "num_cylinders", "fuel")
    list_select_related = ("car",)
    list_filter = ("fuel",)
    inlines = [CylinderInline]


@admin.register(Cylinder)
class CylinderAdmin(HistoryAdminMixin, admin.ModelAdmin):
    list_display = ("id", "engine", "position", "volume_cc")
    list_select_related = ("engine__car",)
