"""``/api/me/``: who the caller is, in which roles, for which vendors."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from procurement_system.rest import AUTHENTICATED, error_responses
from vendors.models import Vendor


class VendorRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Vendor
        fields = ["id", "name"]


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    name = serializers.CharField()
    email = serializers.EmailField()
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=["customer", "vendor_member", "operator"])
    )
    vendors = VendorRefSerializer(many=True)


class MeView(APIView):
    @extend_schema(
        summary="Who am I",
        description="The signed-in user, their roles and the vendors they act for.",
        responses={200: MeSerializer, **error_responses(*AUTHENTICATED)},
    )
    def get(self, request: Request) -> Response:
        user = request.user
        vendors = list(Vendor.objects.filter(members=user).order_by("name"))
        roles = ["customer"]  # anyone may request a pickup
        if vendors:
            roles.append("vendor_member")
        if user.is_staff:
            roles.append("operator")
        me = {
            "id": user.pk,
            "username": user.get_username(),
            "name": user.get_full_name() or user.get_username(),
            "email": user.email,
            "roles": roles,
            "vendors": vendors,
        }
        return Response(MeSerializer(me).data)
