from django.urls import include, path
from rest_framework.routers import SimpleRouter

from tests.api import rest

router = SimpleRouter()
router.register("authors", rest.AuthorViewSet)
router.register("books", rest.BookViewSet)
router.register("cars", rest.CarViewSet)
router.register("engines", rest.EngineViewSet)
router.register("cylinders", rest.CylinderViewSet)
router.register("own-authors", rest.OwnAuthorViewSet, basename="own-author")

urlpatterns = [
    path("", include("revy_api.rest.urls")),
    path("notes/", rest.NoteView.as_view(), name="notes"),
    path("system-notes/", rest.SystemNoteView.as_view(), name="system-notes"),
    *router.urls,
]
