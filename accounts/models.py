import hashlib
import hmac
import secrets

from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

TOKEN_PREFIX = "rm_"
LOOKUP_LENGTH = 8
# Job.client of what a personal token submits: "personal:<its lookup>". Client
# names never hold a colon (create_api_token), so the two cannot meet.
PERSONAL = "personal"
MAX_PERSONAL_TOKENS = 20

# What a person may be told about their renders, and where (User.notifications).
NOTIFY_EVENTS = {
    "started": "Render started",
    "completed": "Render completed",
    "failed": "Render failed",
    "preview": "Preview ready for review",
}
NOTIFY_CHANNELS = {"slack": "Slack direct message", "browser": "This browser"}
# Slack messages were always sent; browser notifications need the browser's permission.
NOTIFY_DEFAULTS = {"slack": list(NOTIFY_EVENTS), "browser": []}


class User(AbstractUser):
    class Role(models.TextChoices):
        USER = "USER", "User"
        ADMIN = "ADMIN", "Admin"

    email = models.EmailField(unique=True)
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.USER)
    slack_user_id = models.CharField(max_length=32, blank=True)
    avatar_url = models.URLField(max_length=500, blank=True)
    # {"slack": [events], "browser": [events]} (NOTIFY_EVENTS); a missing channel
    # has its default (NOTIFY_DEFAULTS).
    notifications = models.JSONField(default=dict, blank=True)

    @property
    def is_admin(self) -> bool:
        return self.role == self.Role.ADMIN or self.is_superuser

    def notified(self, channel: str) -> list[str]:
        """The events this person wants on ``channel`` ("slack" or "browser")."""
        chosen = (self.notifications or {}).get(channel) if isinstance(
            self.notifications, dict) else None
        if not isinstance(chosen, list):
            return list(NOTIFY_DEFAULTS[channel])
        return [event for event in NOTIFY_EVENTS if event in chosen]

    def wants(self, channel: str, event: str) -> bool:
        return event in self.notified(channel)

    def display_name(self) -> str:
        return self.get_full_name() or self.email or self.username


class MacUsername(models.Model):
    """A user's claim on a macOS account name; once approved, API submissions with that
    name are the user's renders.

    Most claims are approved at once; one of a name that already has another
    person's renders (or every claim, with MAC_USERNAME_APPROVAL=true) waits
    for an admin (accounts.claims). A name is held by one claim at a time,
    whatever its case; refused claims are kept for the record and hold nothing.
    """

    class Status(models.TextChoices):
        APPROVED = "approved", "Approved"
        PENDING = "pending", "Waiting for an admin"
        REFUSED = "refused", "Refused"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="mac_usernames")
    name = models.CharField(max_length=64)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.APPROVED)
    claimed_at = models.DateTimeField(default=timezone.now)
    # Why the claim waits for an admin ("has renders of Bob Builder"); empty if it did not.
    reason = models.CharField(max_length=200, blank=True)
    decided_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("name"), name="unique_mac_username_ci",
                                    condition=~models.Q(status="refused")),
        ]
        indexes = [models.Index(fields=["-claimed_at"], name="mac_username_claimed")]
        ordering = ["name"]

    def __str__(self):
        return self.name

    @classmethod
    def find_user(cls, name: str):
        """The user whose approved claim ``name`` is, or None."""
        found = (cls.objects.filter(name__iexact=name.strip(), status=cls.Status.APPROVED)
                 .select_related("user").first())
        return found.user if found else None


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class ApiToken(models.Model):
    """An API token. Only a digest is stored; the token is shown once.

    A client's token (``user`` empty) is a service's (bravo, the plugin): it
    sees the jobs its client submitted. A personal token (``user`` set, made
    in the profile) acts for its person: what it submits is theirs, and it
    sees what they see.
    """

    client = models.CharField(max_length=64)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What it is for")
    lookup = models.CharField(max_length=LOOKUP_LENGTH, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        if self.user_id:
            return f"{self.name or 'personal'} of {self.user} ({self.prefix})"
        return f"{self.client} ({self.prefix})"

    @property
    def prefix(self) -> str:
        return f"{TOKEN_PREFIX}{self.lookup}…"

    @property
    def is_personal(self) -> bool:
        return self.user_id is not None

    @classmethod
    def issue(cls, client: str, *, user: "User | None" = None,
              name: str = "") -> tuple["ApiToken", str]:
        while True:
            lookup = secrets.token_hex(LOOKUP_LENGTH // 2)
            if not cls.objects.filter(lookup=lookup).exists():
                break
        text = f"{TOKEN_PREFIX}{lookup}{secrets.token_urlsafe(32)}"
        if user is not None:
            client = f"{PERSONAL}:{lookup}"
        token = cls.objects.create(client=client.strip().lower(), lookup=lookup,
                                   digest=digest(text), user=user, name=name.strip())
        return token, text

    @classmethod
    def issue_personal(cls, user: "User", name: str) -> tuple["ApiToken", str]:
        """A token that acts for ``user``; shown once."""
        return cls.issue(PERSONAL, user=user, name=name)

    @classmethod
    def verify(cls, text: str) -> "ApiClient | None":
        """The client a token belongs to, or None. Environment tokens count too."""
        if not text or len(text) > 200:
            return None
        for client, env_token in settings.API_TOKENS.items():
            if env_token and hmac.compare_digest(text.encode(), env_token.encode()):
                return ApiClient(client, None)
        if not text.startswith(TOKEN_PREFIX):
            return None
        lookup = text[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + LOOKUP_LENGTH]
        token = (cls.objects.filter(lookup=lookup, revoked_at__isnull=True)
                 .select_related("user").first())
        if token is None or not hmac.compare_digest(token.digest, digest(text)):
            return None
        if token.user_id is not None and not token.user.is_active:
            return None  # a person who left takes their tokens with them
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            cls.objects.filter(pk=token.pk).update(last_used_at=now)
        return ApiClient(token.client, token, user=token.user)


class ApiClient:
    """The authenticated API caller: a client name and the token it used.

    ``user``: the person a personal token acts for (None for a client's token).
    """

    is_authenticated = True
    is_anonymous = False
    is_admin = False
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, name: str, token: ApiToken | None, user: User | None = None):
        self.name = name
        self.token = token
        self.user = user

    def __str__(self):
        return f"api:{self.name}"

    @property
    def actor(self) -> str:
        """Who acted, for a job's timeline."""
        if self.user is not None:
            label = f" “{self.token.name}”" if self.token and self.token.name else ""
            return f"{self.user.email or self.user.username} (personal token{label})"
        return f"api:{self.name}"


# allauth's records of sign-ins, shown in the Django admin's one "Accounts" section
# (accounts.admin) instead of sections of their own.


class SignInEmail(EmailAddress):
    class Meta:
        proxy = True
        verbose_name = "sign-in email address"
        verbose_name_plural = "sign-in email addresses"


class GoogleAccount(SocialAccount):
    class Meta:
        proxy = True
        verbose_name = "Google sign-in"
        verbose_name_plural = "Google sign-ins"
