"""REST views over the test app's models, built the way users build theirs with revy_api."""

from __future__ import annotations

import time

from rest_framework import serializers, viewsets
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from revy_api.rest import HistoryMixin, RevisionContextMixin
from tests.testapp.models import Author, Book, Car, Cylinder, Engine, Note


class AuthorSerializer(serializers.ModelSerializer):
    class Meta:
        model = Author
        fields = ["id", "name", "email", "user"]


class BookSerializer(serializers.ModelSerializer):
    class Meta:
        model = Book
        fields = ["id", "author", "title", "pages", "price", "published"]


class CarSerializer(serializers.ModelSerializer):
    class Meta:
        model = Car
        fields = ["id", "manufacturer"]


class EngineSerializer(serializers.ModelSerializer):
    class Meta:
        model = Engine
        fields = ["id", "car", "num_cylinders"]


class CylinderSerializer(serializers.ModelSerializer):
    class Meta:
        model = Cylinder
        fields = ["id", "engine", "volume"]


class NoteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Note
        fields = ["id", "text"]


class AuthorViewSet(RevisionContextMixin, HistoryMixin, viewsets.ModelViewSet):
    """DjangoModelPermissions (the project default): history as retrieve, rollback as PATCH."""

    queryset = Author.objects.order_by("id")
    serializer_class = AuthorSerializer


class BookViewSet(RevisionContextMixin, HistoryMixin, viewsets.ModelViewSet):
    queryset = Book.objects.order_by("id")
    serializer_class = BookSerializer


class CarViewSet(RevisionContextMixin, HistoryMixin, viewsets.ModelViewSet):
    queryset = Car.objects.order_by("id")
    serializer_class = CarSerializer


class EngineViewSet(RevisionContextMixin, HistoryMixin, viewsets.ModelViewSet):
    queryset = Engine.objects.order_by("id")
    serializer_class = EngineSerializer


class CylinderViewSet(RevisionContextMixin, HistoryMixin, viewsets.ModelViewSet):
    queryset = Cylinder.objects.order_by("id")
    serializer_class = CylinderSerializer


class HistoryOnlyCarViewSet(HistoryMixin, viewsets.ModelViewSet):
    """HistoryMixin without RevisionContextMixin: rollback still records as the user."""

    queryset = Car.objects.order_by("id")
    serializer_class = CarSerializer


class OwnAuthorViewSet(RevisionContextMixin, HistoryMixin, viewsets.ModelViewSet):
    """Only the authors linked to the requesting user: others exist but are not found."""

    serializer_class = AuthorSerializer
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        return Author.objects.filter(user=self.request.user).order_by("id")


class AuthorByUsernameViewSet(RevisionContextMixin, HistoryMixin, viewsets.ModelViewSet):
    """Scoped through a join: deleted rows cannot be judged on their recorded state."""

    serializer_class = AuthorSerializer
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        return Author.objects.filter(user__username=self.request.user.username).order_by("id")


class NoteView(RevisionContextMixin, APIView):
    """A plain APIView with the mixin and both hooks overridden."""

    permission_classes = [IsAuthenticated]

    def get_revision_description(self, request):
        message = super().get_revision_description(request)
        return f"[notes] {message}" if message else "[notes]"

    def post(self, request):
        serializer = NoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data, status=201)


class PublicNoteView(NoteView):
    """Anyone may write, logged in or not."""

    permission_classes = [AllowAny]


class SystemNoteView(NoteView):
    """Changes recorded as the system's, whoever asks."""

    def get_revision_actor(self, request):
        return None


class TwoNotesView(RevisionContextMixin, APIView):
    """Two saves in one request: still one revision. `?pause=` waits between them (at
    most 0.2 s), so that concurrent requests interleave their writes."""

    permission_classes = [IsAuthenticated]

    def post(self, request):
        text = request.data.get("text", "note")
        first = Note.objects.create(text=f"{text} first")
        time.sleep(min(float(request.query_params.get("pause", 0)), 0.2))
        second = Note.objects.create(text=f"{text} second")
        first.text = f"{text} first, edited"
        first.save()
        return Response({"ids": [first.pk, second.pk]}, status=201)
