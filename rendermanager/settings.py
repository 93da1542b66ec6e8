"""Django settings. Every value comes from the environment (see deploy/.env.example)."""

import json
import os
import re
import shlex
import tempfile
from pathlib import Path

import dj_database_url

from rendermanager.env import Env, SettingError, generated_secret

BASE_DIR = Path(__file__).resolve().parent.parent

env = Env(env_file=Path(os.environ.get("ENV_FILE", BASE_DIR / ".env")))


def _command(name: str, text: str) -> list[str]:
    """A command line as an argv list (run without a shell): a JSON array of
    strings, or words split like a shell would (quotes group words; on Windows
    backslashes are kept). ``{python}`` stands for this Python."""
    text = text.strip()
    if text.startswith("["):
        try:
            argv = json.loads(text)
        except ValueError:
            argv = None
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise SettingError(f"{name} must be a JSON array of strings or a command line")
        return argv
    try:
        words = shlex.split(text, posix=os.name != "nt")
    except ValueError as exc:
        raise SettingError(f"{name} is not a valid command line: {exc}") from None
    return [w[1:-1] if len(w) >= 2 and w[0] == w[-1] == '"' else w for w in words]



DEBUG = env.bool("DEBUG", False)
# Everything this install writes (the SQLite database, the demo's files, a generated key).
DATA_DIR = Path(env.str("DATA_DIR", str(BASE_DIR / "var")))
SECRET_KEY = env.str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise SettingError("SECRET_KEY must be set (any long random string) unless DEBUG=true")
    # `make run` writes DEBUG=true and no key. A key printed in the source would let
    # anyone sign download links and sessions: make one for this install and keep it.
    SECRET_KEY = generated_secret(DATA_DIR / "secret_key")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
PORT = env.int("PORT", 8000, minimum=1, maximum=65535)
PUBLIC_URL = env.url("PUBLIC_URL", f"http://localhost:{PORT}")

INSTALLED_APPS = [
    "daphne",
    # The Django admin, signing in through the dashboard's login (accounts/admin_site.py).
    "accounts.admin_config.AdminSiteConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "channels",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "accounts",
    "jobs",
    "systemadmin",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "rendermanager.notfound.FriendlyNotFound",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "jobs.api.middleware.ApiBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "rendermanager.urls"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "rendermanager.wsgi.application"
ASGI_APPLICATION = "rendermanager.asgi.application"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Database: SQLite file by default so a first run needs no server.
DATABASE_URL = env.str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
except Exception as exc:  # dj_database_url raises several kinds
    raise SettingError(f"DATABASE_URL is not a database URL: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # Two processes (web + worker) write to one file: WAL, a busy timeout and
    # IMMEDIATE transactions keep them from failing with "database is locked".
    _db["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
        "PRAGMA busy_timeout=10000;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 10,
    }
    _db_name = Path(_db["NAME"])
    _db_name.parent.mkdir(parents=True, exist_ok=True)
    # Tests need a file database too: real worker processes share it.
    _db["TEST"] = {"NAME": str(_db_name.with_name("test_" + _db_name.name))}
elif _db["ENGINE"] == "django.db.backends.postgresql":
    # A server that vanished from the network (no reset, no answer) must not hold
    # a query for as long as TCP keeps trying (about 15 minutes): libpq gives up on
    # a silent connection within about 30 s. Options in DATABASE_URL's query win.
    _db.setdefault("OPTIONS", {})
    for _key, _value in (("connect_timeout", 10), ("keepalives", 1), ("keepalives_idle", 10),
                         ("keepalives_interval", 5), ("keepalives_count", 3),
                         ("tcp_user_timeout", 30_000)):
        _db["OPTIONS"].setdefault(_key, _value)
else:
    raise SettingError("DATABASE_URL must be a sqlite:// or postgres:// URL")
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = []
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
# Sessions for everyone; passwords only with ALLOW_PASSWORD_LOGIN=true (accounts/backends.py).
AUTHENTICATION_BACKENDS = [
    "accounts.backends.SessionBackend",
    "accounts.backends.PasswordBackend",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "jobs.api.pagination.JobPagination",
    "EXCEPTION_HANDLER": "jobs.api.errors.exception_handler",
    # Per API token, at API_RATE_LIMIT; sessions are not limited.
    "DEFAULT_THROTTLE_CLASSES": ["jobs.api.throttling.ApiTokenRateThrottle"],
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AE Render Manager API",
    "DESCRIPTION": "Submit After Effects renders, follow them, download the result.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Two fields are called "status": a job's, and a footage file's in Job.project.
    "ENUM_NAME_OVERRIDES": {"StatusEnum": "jobs.models.Status",
                            "FootageStatusEnum": "jobs.api.serializers.FOOTAGE_STATUSES"},
}

# --- The render manager's own settings --------------------------------------

ALLOWED_EMAIL_DOMAIN = env.str("ALLOWED_EMAIL_DOMAIN", "").lower().lstrip("@")
ADMIN_EMAILS = [e.lower() for e in env.list("ADMIN_EMAILS")]
ALLOW_PASSWORD_LOGIN = env.bool("ALLOW_PASSWORD_LOGIN", False)
# Every claim of a macOS username waits for an admin (not only those of a name that
# already has another person's renders): accounts.claims.
MAC_USERNAME_APPROVAL = env.bool("MAC_USERNAME_APPROVAL", False)
GOOGLE_CLIENT_ID = env.str("GOOGLE_CLIENT_ID")
GOOGLE_CLIENT_SECRET = env.str("GOOGLE_CLIENT_SECRET")

# Sign-in (django-allauth). Google is the way in; the adapters in
# accounts/adapters.py check the domain, `hd` and email_verified at every
# login. allauth reads SOCIALACCOUNT_ONLY when its URLs are imported, so it
# must follow the environment here, not be overridden later.
SOCIALACCOUNT_ONLY = not ALLOW_PASSWORD_LOGIN
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_SESSION_REMEMBER = True
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_QUERY_EMAIL = True
# Users created with `add_user` before their first Google sign-in are matched
# by their (verified, company-domain) email instead of getting a duplicate.
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_PROVIDERS = {
    "google": {
        "APPS": [{"client_id": GOOGLE_CLIENT_ID, "secret": GOOGLE_CLIENT_SECRET, "key": ""}]
        if GOOGLE_CLIENT_ID else [],
        "SCOPE": ["openid", "profile", "email"],
        # `hd` only makes Google preselect company accounts; it is checked again
        # server-side because anyone can edit the authorization URL.
        "AUTH_PARAMS": {"prompt": "select_account",
                        **({"hd": ALLOWED_EMAIL_DOMAIN} if ALLOWED_EMAIL_DOMAIN else {})},
        "OAUTH_PKCE_ENABLED": True,
    },
}

SLACK_BOT_TOKEN = env.str("SLACK_BOT_TOKEN")
SLACK_ADMIN_CHANNEL = env.str("SLACK_ADMIN_CHANNEL")
SLACK_API_URL = env.url("SLACK_API_URL", "https://slack.com/api")
WEBHOOK_SECRET = env.str("WEBHOOK_SECRET")
WEBHOOK_ALLOW_PRIVATE = env.bool("WEBHOOK_ALLOW_PRIVATE", False)

# Operations (notifications, webhooks, metrics, rate limits, self-update).
SLACK_TIMEOUT_SECONDS = env.float("SLACK_TIMEOUT_SECONDS", 5, minimum=0.1, maximum=120)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", 5, minimum=0.1, maximum=120)
DISK_ALERT_PERCENT = env.float("DISK_ALERT_PERCENT", 90, minimum=1, maximum=100)
METRICS_TOKEN = env.str("METRICS_TOKEN")
API_RATE_LIMIT = env.str("API_RATE_LIMIT", "120/min")
if not re.fullmatch(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)", API_RATE_LIMIT):
    raise SettingError(f"API_RATE_LIMIT must look like 120/min (per s, min, hour or day), "
                       f"got {API_RATE_LIMIT!r}")
UPDATE_REPO_DIR = BASE_DIR
UPDATE_GIT = env.str("UPDATE_GIT", "git")
UPDATE_REMOTE = env.str("UPDATE_REMOTE", "origin")
UPDATE_BRANCH = env.str("UPDATE_BRANCH", "main")
for _name, _value in (("UPDATE_REMOTE", UPDATE_REMOTE), ("UPDATE_BRANCH", UPDATE_BRANCH)):
    if not _value or _value.startswith("-") or any(c.isspace() for c in _value):
        raise SettingError(f"{_name} must be a git remote/branch name, got {_value!r}")
UPDATE_INSTALL_COMMAND = _command("UPDATE_INSTALL_COMMAND", env.str(
    "UPDATE_INSTALL_COMMAND", "{python} -m pip install --disable-pip-version-check -e ."))
UPDATE_NPM_COMMAND = _command("UPDATE_NPM_COMMAND", env.str("UPDATE_NPM_COMMAND",
                                                     "npm ci --no-audit --no-fund"))
UPDATE_MIGRATE_COMMAND = _command("UPDATE_MIGRATE_COMMAND", env.str(
    "UPDATE_MIGRATE_COMMAND", "{python} manage.py migrate --noinput"))
UPDATE_COLLECTSTATIC_COMMAND = _command("UPDATE_COLLECTSTATIC_COMMAND", env.str(
    "UPDATE_COLLECTSTATIC_COMMAND", "{python} manage.py collectstatic --noinput"))
UPDATE_RESTART_COMMAND = _command("UPDATE_RESTART_COMMAND", env.str("UPDATE_RESTART_COMMAND", ""))
UPDATE_STEP_TIMEOUT_SECONDS = env.float("UPDATE_STEP_TIMEOUT_SECONDS", 900, minimum=1)
UPDATE_DRAIN_TIMEOUT_SECONDS = env.float("UPDATE_DRAIN_TIMEOUT_SECONDS", 3600, minimum=1)
# Behind the HTTPS reverse proxy (deploy/nginx.conf): trust its X-Forwarded-Proto
# so Django knows the request came over HTTPS (secure cookies, CSRF checks).
BEHIND_HTTPS_PROXY = env.bool("BEHIND_HTTPS_PROXY", False)
if BEHIND_HTTPS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
CSRF_TRUSTED_ORIGINS = ["/".join(PUBLIC_URL.split("/")[:3])]

DROPBOX_PATH = env.str("DROPBOX_PATH", str(DATA_DIR / "Dropbox"))
RENDER_OUTPUT_DIR = env.str("RENDER_OUTPUT_DIR", str(Path(DROPBOX_PATH) / "renders"))
RENDER_TEMP_DIR = env.str("RENDER_TEMP_DIR", str(Path(tempfile.gettempdir()) / "ae-render-manager"))
# macOS Dropbox folders (relative to /Users/<name>/) that map onto DROPBOX_PATH.
MAC_DROPBOX_FOLDERS = env.list(
    "MAC_DROPBOX_FOLDERS",
    ["Dropbox", "Library/CloudStorage/Dropbox", "Dropbox (Team)"],
)

RENDER_ENGINE = env.choice("RENDER_ENGINE", "nexrender", ["nexrender", "aerender"])
AERENDER_PATH = env.str("AERENDER_PATH", str(DATA_DIR / "aerender-simulator" / "aerender"))
NEXRENDER_CLI = env.str(
    "NEXRENDER_CLI", str(BASE_DIR / "node_modules" / "@nexrender" / "cli" / "src" / "bin.js")
)
NODE_BINARY = env.str("NODE_BINARY", "node")

API_TOKENS = env.prefixed("API_TOKEN_")

MIN_FILE_AGE_SECONDS = env.float("MIN_FILE_AGE_SECONDS", 30, minimum=0)
STABILITY_CHECK_SECONDS = env.float("STABILITY_CHECK_SECONDS", 3, minimum=0)
SAVED_AT_TOLERANCE_SECONDS = env.float("SAVED_AT_TOLERANCE_SECONDS", 2, minimum=0)
VALIDATION_ATTEMPTS = env.int("VALIDATION_ATTEMPTS", 10, minimum=1, maximum=10000)
VALIDATION_INTERVAL_SECONDS = env.float("VALIDATION_INTERVAL_SECONDS", 3, minimum=0.05)
# Reading the .aep before rendering (jobs.node.preflight): a child process, killed
# past this time or this much memory; the job then renders without the checks.
PROJECT_READ_TIMEOUT_SECONDS = env.float("PROJECT_READ_TIMEOUT_SECONDS", 60, minimum=0.1,
                                         maximum=3600)
PROJECT_READ_MAX_MB = env.int("PROJECT_READ_MAX_MB", 1024, minimum=16, maximum=65536)
MAX_RENDER_ATTEMPTS = env.int("MAX_RENDER_ATTEMPTS", 3, minimum=1, maximum=100)
NODE_TIMEOUT_SECONDS = env.float("NODE_TIMEOUT_SECONDS", 30, minimum=1)
HEARTBEAT_SECONDS = env.float("HEARTBEAT_SECONDS", min(5.0, NODE_TIMEOUT_SECONDS / 4), minimum=0.1)
# A render stops once its node's heartbeat is older than 0.8 x NODE_TIMEOUT_SECONDS
# (jobs.node.render: soon another node may take the job); between two beats it
# grows to HEARTBEAT_SECONDS and more (a beat takes time). At most half leaves room.
if HEARTBEAT_SECONDS > NODE_TIMEOUT_SECONDS / 2:
    raise SettingError(
        f"HEARTBEAT_SECONDS ({HEARTBEAT_SECONDS:g}) must be at most half of "
        f"NODE_TIMEOUT_SECONDS ({NODE_TIMEOUT_SECONDS:g}): a render node stops its render "
        "when its last heartbeat is older than 0.8 x NODE_TIMEOUT_SECONDS, so every render "
        "would be interrupted")
RENDER_STALL_SECONDS = env.float("RENDER_STALL_SECONDS", 600, minimum=1)
JOB_RETENTION_DAYS = env.int("JOB_RETENTION_DAYS", 7, minimum=1)
WORKER_POLL_SECONDS = env.float("WORKER_POLL_SECONDS", 0.5, minimum=0.01, maximum=60)
# A nexrender render due to end within this many seconds (its own estimate) has its
# node claim the next job and prepare it (jobs.node.worker, claim_ahead); 0: never.
CLAIM_AHEAD_SECONDS = env.float("CLAIM_AHEAD_SECONDS", 3.0, minimum=0, maximum=600)
PROGRESS_WRITE_SECONDS = env.float("PROGRESS_WRITE_SECONDS", 1.0, minimum=0, maximum=60)
RENDER_LOG_MAX_BYTES = env.int("RENDER_LOG_MAX_BYTES", 1_000_000, minimum=10_000)
PUBLISH_RETRY_SECONDS = env.float("PUBLISH_RETRY_SECONDS", 60, minimum=0, maximum=3600)
WORKER_MEMORY_LIMIT_MB = env.int("WORKER_MEMORY_LIMIT_MB", 1536, minimum=0)
# The preview video of a completed render (jobs.node.proxy), kept in the database:
# at most this many bytes each; 0 makes none.
PROXY_MAX_BYTES = env.int("PROXY_MAX_BYTES", 8 * 1024 * 1024, minimum=0, maximum=256 * 1024**2)
# Work after completion (jobs.node.followups): tries before it is given up.
FOLLOW_UP_ATTEMPTS = env.int("FOLLOW_UP_ATTEMPTS", 3, minimum=1, maximum=100)
# How often a running image-sequence render sends its newest frame (jobs.node.live_frame);
# 0: never.
LIVE_FRAME_SECONDS = env.float("LIVE_FRAME_SECONDS", 3, minimum=0, maximum=3600)
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)

# Render-time estimates (jobs.estimates) and what render time costs (estimates, usage report).
ESTIMATE_DEFAULT_SECONDS_PER_FRAME = env.float("ESTIMATE_DEFAULT_SECONDS_PER_FRAME", 1.0,
                                               minimum=0.001, maximum=86400)
RENDER_COST_PER_MINUTE = env.decimal("RENDER_COST_PER_MINUTE", minimum=0)
RENDER_COST_CURRENCY = env.str("RENDER_COST_CURRENCY").upper()
if RENDER_COST_CURRENCY and not re.fullmatch(r"[A-Z]{3}", RENDER_COST_CURRENCY):
    raise SettingError("RENDER_COST_CURRENCY must be a three-letter currency code such as "
                       f"EUR or USD, got {RENDER_COST_CURRENCY!r}")
if (RENDER_COST_PER_MINUTE is None) != (not RENDER_COST_CURRENCY):
    raise SettingError("RENDER_COST_PER_MINUTE and RENDER_COST_CURRENCY go together: set both "
                       "(e.g. 0.85 and EUR) or neither")


def _bundled_ffmpeg() -> str:
    """The ffmpeg binary of the imageio-ffmpeg wheel (installed by `make setup`)."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # no wheel for this platform: fall back to ffmpeg on PATH
        return "ffmpeg"


# The ffmpeg engine (timeline jobs), output presets and poster frames.
FFMPEG_PATH = env.str("FFMPEG_PATH") or _bundled_ffmpeg()
TIMELINE_MAX_TRACKS = env.int("TIMELINE_MAX_TRACKS", 32, minimum=1, maximum=1000)
TIMELINE_MAX_SECONDS = env.float("TIMELINE_MAX_SECONDS", 10800, minimum=1)
TIMELINE_MAX_WIDTH = env.int("TIMELINE_MAX_WIDTH", 1920, minimum=16, maximum=8192)
TIMELINE_MAX_HEIGHT = env.int("TIMELINE_MAX_HEIGHT", 1080, minimum=16, maximum=8192)
TIMELINE_ALLOWED_HOSTS = [host.lower() for host in env.list("TIMELINE_ALLOWED_HOSTS")]
TIMELINE_DOWNLOAD_MAX_BYTES = env.int("TIMELINE_DOWNLOAD_MAX_BYTES", 2 * 1024**3, minimum=1024)
TIMELINE_DOWNLOAD_TIMEOUT_SECONDS = env.float("TIMELINE_DOWNLOAD_TIMEOUT_SECONDS", 300,
                                              minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", "INFO").upper()},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

env.check_file_keys()
