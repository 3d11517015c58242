"""The demo's REST API: organizations, the ledger and the garage, each with its history.

Every viewset records one revision per request (`RevisionContextMixin`) and offers
`history/`, `snapshot/`, `diff/` and `rollback/` per object (`HistoryMixin`).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import pagination, serializers, viewsets
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.parsers import JSONParser

from example.garage.models import Car, Cylinder, Engine
from example.ledger.models import Account, Transaction
from example.organizations.models import Membership, Organization
from revy_api.rest import (
    ChangesViewSet,
    DeletedViewSet,
    DeltaViewSet,
    HistoryMixin,
    RevisionContextMixin,
    RevisionViewSet,
)
from revy_api.rest.pagination import LinkHeaderPagination


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "slug", "name"]


class MembershipSerializer(serializers.ModelSerializer):
    class Meta:
        model = Membership
        fields = ["id", "organization", "user", "role"]


class AccountSerializer(serializers.ModelSerializer):
    class Meta:
        model = Account
        fields = ["id", "organization", "name", "currency"]


class TransactionSerializer(serializers.ModelSerializer):
    """`local_amount` is the system's: recomputed from amount and exchange rate on save."""

    class Meta:
        model = Transaction
        fields = [
            "id",
            "account",
            "counterparty",
            "memo",
            "amount",
            "exchange_rate",
            "local_amount",
            "booked_at",
        ]
        read_only_fields = ["local_amount", "booked_at"]
        extra_kwargs = {"exchange_rate": {"min_value": 0}}

    def create(self, validated_data: dict[str, Any]) -> Transaction:
        transaction = Transaction(**validated_data)
        self._correct(transaction)
        transaction.save()
        return transaction

    def update(self, instance: Transaction, validated_data: dict[str, Any]) -> Transaction:
        for name, value in validated_data.items():
            setattr(instance, name, value)
        self._correct(instance)
        instance.save()
        return instance

    @staticmethod
    def _correct(transaction: Transaction) -> None:
        """Correct the local amount, and refuse amounts whose local amount does not fit its
        column (a 400 naming the fields, where the database would refuse the UPDATE)."""
        transaction.correct_local_amount()
        field = Transaction._meta.get_field("local_amount")
        try:
            field.clean(transaction.local_amount, transaction)
        except DjangoValidationError as error:
            message = (
                "amount times exchange_rate gives a local amount that does not fit: "
                f"{error.messages[0]}"
            )
            raise serializers.ValidationError(
                {"amount": [message], "exchange_rate": [message]}
            ) from None


class CarSerializer(serializers.ModelSerializer):
    class Meta:
        model = Car
        fields = ["id", "manufacturer", "model"]


# Integer bounds are explicit: DRF would take them from the database in use (SQLite's are
# 64-bit), and the API, like its OpenAPI document, must not depend on it.
_INT32 = {"min_value": -(2**31), "max_value": 2**31 - 1}


class EngineSerializer(serializers.ModelSerializer):
    class Meta:
        model = Engine
        fields = ["id", "car", "num_cylinders", "fuel"]
        extra_kwargs = {"num_cylinders": _INT32}


class CylinderSerializer(serializers.ModelSerializer):
    class Meta:
        model = Cylinder
        fields = ["id", "engine", "position", "volume_cc"]
        extra_kwargs = {
            "position": {"min_value": 0, "max_value": 2**15 - 1},
            "volume_cc": {"min_value": 0, "max_value": 2**31 - 1},
        }


class PagePagination(LinkHeaderPagination, pagination.PageNumberPagination):
    """Numbered pages of 50, linked in the body and in a `Link` header.

    `page` is a number, as the OpenAPI document says: an empty one is not page 1, and
    `last` is not a page (both are 404 Invalid page).
    """

    page_size = 50
    last_page_strings = ()

    def get_page_number(self, request: Any, paginator: Any) -> Any:
        return request.query_params.get(self.page_query_param, 1)


# On the views themselves, not left to the settings: DRF reads them when a view class is
# created, and the OpenAPI document must not depend on the settings of the process making it.
# Token first: clients without credentials get 401 with `WWW-Authenticate: Token`.
AUTHENTICATION = [TokenAuthentication, SessionAuthentication]


class _HistoryViewSet(RevisionContextMixin, HistoryMixin, viewsets.ModelViewSet):
    authentication_classes = AUTHENTICATION
    pagination_class = PagePagination
    # JSON only, as revy's own actions: a multipart body with no parts is an empty form to
    # Django's parser, so a PATCH with a malformed one would answer 200 and change nothing.
    # Other media types get 415.
    parser_classes = [JSONParser]


class RevisionsViewSet(RevisionViewSet):
    """revy's `/revisions/`, with the demo's authentication."""

    authentication_classes = AUTHENTICATION


class DeltasViewSet(DeltaViewSet):
    """revy's `/deltas/`, with the demo's authentication."""

    authentication_classes = AUTHENTICATION


class DeletedObjectsViewSet(DeletedViewSet):
    """revy's `/deleted/`, with the demo's authentication."""

    authentication_classes = AUTHENTICATION


class ChangeFeedViewSet(ChangesViewSet):
    """revy's `/changes/`, with the demo's authentication."""

    authentication_classes = AUTHENTICATION


class OrganizationViewSet(_HistoryViewSet):
    queryset = Organization.objects.order_by("id")
    serializer_class = OrganizationSerializer


class MembershipViewSet(_HistoryViewSet):
    queryset = Membership.objects.order_by("id")
    serializer_class = MembershipSerializer


class AccountViewSet(_HistoryViewSet):
    queryset = Account.objects.order_by("id")
    serializer_class = AccountSerializer


class TransactionViewSet(_HistoryViewSet):
    queryset = Transaction.objects.order_by("id")
    serializer_class = TransactionSerializer


class CarViewSet(_HistoryViewSet):
    """A car's history with `?aggregates=true` includes its engine's and cylinders' changes."""

    queryset = Car.objects.order_by("id")
    serializer_class = CarSerializer


class EngineViewSet(_HistoryViewSet):
    queryset = Engine.objects.order_by("id")
    serializer_class = EngineSerializer


class CylinderViewSet(_HistoryViewSet):
    queryset = Cylinder.objects.order_by("id")
    serializer_class = CylinderSerializer
