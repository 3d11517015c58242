from django.urls import include, path
from rest_framework.authentication import TokenAuthentication
from rest_framework.routers import SimpleRouter

from revy_api.rest.views import RevisionViewSet
from tests.api import rest

router = SimpleRouter()
router.register("authors", rest.AuthorViewSet)
router.register("books", rest.BookViewSet)
router.register("cars", rest.CarViewSet)
router.register("engines", rest.EngineViewSet)
router.register("cylinders", rest.CylinderViewSet)
router.register("own-authors", rest.OwnAuthorViewSet, basename="own-author")
router.register("authors-by-username", rest.AuthorByUsernameViewSet, basename="author-by-username")
router.register("history-only-cars", rest.HistoryOnlyCarViewSet, basename="history-only-car")

urlpatterns = [
    path("", include("revy_api.rest.urls")),
    path("notes/", rest.NoteView.as_view(), name="notes"),
    path("system-notes/", rest.SystemNoteView.as_view(), name="system-notes"),
    path("public-notes/", rest.PublicNoteView.as_view(), name="public-notes"),
    path("two-notes/", rest.TwoNotesView.as_view(), name="two-notes"),
    # Token authentication only: anonymous requests get 401 (with WWW-Authenticate).
    path(
        "token-only/revisions/",
        RevisionViewSet.as_view({"get": "list"}, authentication_classes=[TokenAuthentication]),
        name="token-only-revisions",
    ),
    *router.urls,
]
