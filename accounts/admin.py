"""The Django admin for people, claims and tokens: one "Accounts" section, which also
holds allauth's sign-in records (their own sections would be a second "Accounts" and a
"Social Accounts"; the Google app is configured in settings, no tokens are stored)."""

from allauth.account.admin import EmailAddressAdmin
from allauth.account.models import EmailAddress
from allauth.socialaccount.admin import SocialAccountAdmin
from allauth.socialaccount.models import SocialAccount, SocialApp, SocialToken
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils import timezone

from accounts import claims
from accounts.models import ApiToken, GoogleAccount, MacUsername, SignInEmail, User

for _model in (EmailAddress, SocialAccount, SocialApp, SocialToken):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
admin.site.register(SignInEmail, EmailAddressAdmin)
admin.site.register(GoogleAccount, SocialAccountAdmin)


class MacUsernameInline(admin.TabularInline):
    model = MacUsername
    fk_name = "user"
    extra = 0
    fields = ("name", "status", "claimed_at", "reason", "decided_by", "decided_at")
    readonly_fields = ("claimed_at", "reason", "decided_by", "decided_at")


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("email", "username", "first_name", "last_name", "role", "slack_user_id",
                    "is_active", "last_login")
    list_filter = ("role", "is_active", "is_staff", "is_superuser")
    search_fields = ("email", "username", "first_name", "last_name", "slack_user_id",
                     "mac_usernames__name")
    ordering = ("email",)
    inlines = [MacUsernameInline]
    fieldsets = (*BaseUserAdmin.fieldsets,
                 ("Render manager", {"fields": ("role", "slack_user_id", "avatar_url")}))
    add_fieldsets = (*BaseUserAdmin.add_fieldsets,
                     ("Render manager", {"fields": ("email", "role", "slack_user_id")}))


@admin.register(MacUsername)
class MacUsernameAdmin(admin.ModelAdmin):
    """Claims are decided on the admin panel (/system#claims); here for raw fixes too."""

    list_display = ("name", "user", "status", "claimed_at", "reason", "decided_by")
    list_filter = ("status",)
    search_fields = ("name", "user__email")
    autocomplete_fields = ("user",)
    readonly_fields = ("claimed_at", "reason", "decided_by", "decided_at")
    actions = ["approve", "refuse"]

    @admin.action(description="Approve the selected claims")
    def approve(self, request, queryset):
        done = sum(claims.approve(claim, request.user) for claim in queryset)
        self.message_user(request, f"{done} claim(s) approved.", messages.SUCCESS)

    @admin.action(description="Refuse the selected claims")
    def refuse(self, request, queryset):
        done = sum(claims.refuse(claim, request.user) for claim in queryset)
        self.message_user(request, f"{done} claim(s) refused.", messages.SUCCESS)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens show only their prefix; the digest is never displayed or editable.

    Clients' tokens are made with ``python manage.py create_api_token <client>``,
    personal ones in the profile; both print the token once.
    """

    list_display = ("client", "user", "name", "prefix", "created_at", "last_used_at",
                    "revoked_at")
    list_filter = ("client", "revoked_at")
    search_fields = ("client", "lookup", "name", "user__email")
    fields = ("client", "user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("client", "user", "prefix", "created_at", "last_used_at")
    actions = ["revoke"]

    @admin.display(description="Token")
    def prefix(self, token):
        return token.prefix

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)
