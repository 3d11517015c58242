"""The demo's REST API under /api/: model endpoints, revy's history endpoints, the docs.

- `/api/schema/`: the OpenAPI document; `/api/docs/`: Swagger UI (served from
  drf-spectacular-sidecar's local assets, no CDN).
"""

from django.urls import include, path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from example.api import rest

router = DefaultRouter()
router.include_format_suffixes = False  # one URL per endpoint in the schema
router.register("organizations", rest.OrganizationViewSet)
router.register("memberships", rest.MembershipViewSet)
router.register("accounts", rest.AccountViewSet)
router.register("transactions", rest.TransactionViewSet)
router.register("cars", rest.CarViewSet)
router.register("engines", rest.EngineViewSet)
router.register("cylinders", rest.CylinderViewSet)
# revy's global endpoints (what `include("revy_api.rest.urls")` gives), with the demo's
# authentication classes.
router.register("revisions", rest.RevisionsViewSet, basename="revision")
router.register("deltas", rest.DeltasViewSet, basename="delta")
router.register("deleted", rest.DeletedObjectsViewSet, basename="deleted")
router.register("changes", rest.ChangeFeedViewSet, basename="change")


@extend_schema(exclude=True)  # the document does not describe itself, whatever the settings
class SchemaView(SpectacularAPIView):
    pass


urlpatterns = [
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("", include(router.urls)),
]
