"""The signed-in user's own profile over the API (session only, not API tokens)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.forms import clean_mac_usernames, clean_slack_id, save_mac_usernames
from accounts.models import MacUsername, User


class IsSignedInUser(BasePermission):
    """A person signed in to the dashboard; an API client has no profile."""

    message = "Sign in to the dashboard first; API tokens have no user profile."

    def has_permission(self, request, view):
        return isinstance(request.user, User) and request.user.is_authenticated


class ClaimSerializer(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending", "refused"])
    reason = serializers.CharField(help_text="Why it waits for an admin.")


class ProfileSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField()
    avatar_url = serializers.CharField()
    role = serializers.CharField()
    mac_usernames = serializers.ListField(
        child=serializers.CharField(), help_text="Approved: submissions with these are yours.")
    mac_username_claims = serializers.ListField(
        child=ClaimSerializer(), help_text="Claims waiting for an admin, or refused.")
    slack_user_id = serializers.CharField()


def profile_data(user: User) -> dict:
    return {
        "id": user.pk,
        "email": user.email,
        "name": user.display_name(),
        "avatar_url": user.avatar_url,
        "role": User.Role.ADMIN if user.is_admin else User.Role.USER,
        "mac_usernames": list(user.mac_usernames.filter(status=MacUsername.Status.APPROVED)
                              .values_list("name", flat=True)),
        "mac_username_claims": [
            {"name": c.name, "status": c.status, "reason": c.reason}
            for c in user.mac_usernames.exclude(status=MacUsername.Status.APPROVED)],
        "slack_user_id": user.slack_user_id,
    }


def _field_error(field: str, exc: DjangoValidationError) -> ValidationError:
    return ValidationError({field: list(exc.messages)})


class ProfileApiView(APIView):
    # The default authenticators stay, so that no credentials is a 401 and a
    # token is a 403 that says why.
    permission_classes = [IsSignedInUser]


class ProfileView(ProfileApiView):
    @extend_schema(tags=["user"], responses=ProfileSerializer)
    def get(self, request):
        return Response(profile_data(request.user))


class MacUsernamesView(ProfileApiView):
    @extend_schema(tags=["user"], responses=ProfileSerializer, request=inline_serializer(
        "MacUsernames", {"mac_usernames": serializers.ListField(child=serializers.CharField())}))
    def put(self, request):
        if not isinstance(request.data, dict) or "mac_usernames" not in request.data:
            raise ValidationError({"mac_usernames": ["This field is required."]})
        try:
            names = clean_mac_usernames(request.data["mac_usernames"], request.user)
            save_mac_usernames(request.user, names)
        except DjangoValidationError as exc:
            raise _field_error("mac_usernames", exc) from None
        return Response(profile_data(request.user))


class SlackIdView(ProfileApiView):
    @extend_schema(tags=["user"], responses=ProfileSerializer, request=inline_serializer(
        "SlackId", {"slack_user_id": serializers.CharField(allow_blank=True)}))
    def put(self, request):
        if not isinstance(request.data, dict) or "slack_user_id" not in request.data:
            raise ValidationError({"slack_user_id": ["This field is required."]})
        try:
            value = clean_slack_id(request.data["slack_user_id"], request.user)
        except DjangoValidationError as exc:
            raise _field_error("slack_user_id", exc) from None
        user = request.user
        if user.slack_user_id != value:
            user.slack_user_id = value
            user.save(update_fields=["slack_user_id"])
        return Response(profile_data(user))
