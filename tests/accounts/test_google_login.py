"""Google sign-in, with Google faked at the HTTP boundary.

The browser part of OAuth is played by the test client: it starts the login,
follows Google's redirect back with a code, and the server exchanges that
code with "Google" over HTTP. Those HTTP calls reach FakeGoogle instead of
the network; it answers like Google's token and certificate endpoints, with
an ID token signed by a throwaway key.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
import requests
from allauth.socialaccount.models import SocialAccount
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.test import Client

from accounts.models import User

pytestmark = pytest.mark.django_db

CLIENT_ID = "rm-test.apps.googleusercontent.com"
TOKEN_URL = "https://oauth2.googleapis.com/token"
CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


class FakeGoogle:
    """Google's token and certificate endpoints, answering one sign-in at a time."""

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-google")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(1)
                     .not_valid_before(now - dt.timedelta(days=1))
                     .not_valid_after(now + dt.timedelta(days=1))
                     .sign(self.key, hashes.SHA256()))
        self.claims: dict = {}
        self.token_requests: list[dict] = []

    def sign_in_as(self, email, *, sub="10001", hd=None, verified=True, **extra):
        domain = email.rsplit("@", 1)[1]
        self.claims = {
            "iss": "https://accounts.google.com", "aud": CLIENT_ID, "azp": CLIENT_ID,
            "sub": sub, "email": email, "email_verified": verified,
            "hd": domain if hd is None else hd,
            "name": "Carla Compositor", "given_name": "Carla", "family_name": "Compositor",
            "picture": "https://lh3.googleusercontent.com/a/carla",
            "iat": int(time.time()), "exp": int(time.time()) + 3600, **extra,
        }
        if hd is False:
            del self.claims["hd"]

    def id_token(self) -> str:
        pem = self.key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        return jwt.encode(self.claims, pem, algorithm="RS256", headers={"kid": "fake-kid"})

    def send(self, adapter, request, **kwargs):
        """Stands in for requests' HTTPAdapter.send: the HTTP boundary."""
        url = request.url.split("?")[0]
        if url == TOKEN_URL and request.method == "POST":
            self.token_requests.append(parse_qs(request.body if isinstance(request.body, str)
                                                else request.body.decode()))
            return self._json(request, {"access_token": "ya29.fake", "expires_in": 3599,
                                        "token_type": "Bearer", "scope": "openid email profile",
                                        "id_token": self.id_token()})
        if url == CERTS_URL:
            cert = self.cert.public_bytes(serialization.Encoding.PEM).decode()
            return self._json(request, {"fake-kid": cert})
        raise AssertionError(f"unexpected request to Google: {request.method} {request.url}")

    @staticmethod
    def _json(request, body) -> requests.Response:
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        response.url = request.url
        response.request = request
        return response


@pytest.fixture
def google(settings, monkeypatch):
    settings.SOCIALACCOUNT_PROVIDERS = {"google": {
        **settings.SOCIALACCOUNT_PROVIDERS["google"],
        "APPS": [{"client_id": CLIENT_ID, "secret": "fake-secret", "key": ""}],
        # What settings.py builds from ALLOWED_EMAIL_DOMAIN=studio.test at start.
        "AUTH_PARAMS": {"hd": "studio.test", "prompt": "select_account"},
    }}
    settings.ALLOWED_EMAIL_DOMAIN = "studio.test"
    settings.ADMIN_EMAILS = ["boss@studio.test"]
    fake = FakeGoogle()
    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send",
                        lambda adapter, request, **kw: fake.send(adapter, request, **kw))
    return fake


def sign_in(client: Client):
    """Press "Sign in with Google", let "Google" send the browser back with a code."""
    start = client.post("/accounts/google/login/")
    assert start.status_code == 302
    authorize = urlparse(start["Location"])
    params = parse_qs(authorize.query)
    assert authorize.netloc == "accounts.google.com"
    callback = client.get("/accounts/google/login/callback/",
                          {"state": params["state"][0], "code": "fake-code"})
    return params, callback


def signed_in_user(client: Client):
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


def test_a_company_account_is_created_and_signed_in(google):
    google.sign_in_as("carla@studio.test")
    client = Client()

    params, response = sign_in(client)

    user = signed_in_user(client)
    assert user is not None and user.email == "carla@studio.test"
    assert (user.first_name, user.last_name) == ("Carla", "Compositor")
    assert user.avatar_url == "https://lh3.googleusercontent.com/a/carla"
    assert user.role == User.Role.USER and not user.is_admin
    assert not user.has_usable_password()
    # Google was asked for company accounts only, with PKCE.
    assert params["hd"] == ["studio.test"]
    assert params["code_challenge_method"] == ["S256"]
    assert google.token_requests[0]["code"] == ["fake-code"]
    assert google.token_requests[0]["code_verifier"]
    # First login: straight to the profile to add a macOS username.
    assert response.status_code == 302 and response["Location"] == "/profile?welcome=1"
    assert "Welcome, Carla!" in client.get(response["Location"]).content.decode()


def test_another_domain_is_refused(google):
    google.sign_in_as("carla@gmail.com", hd=False)
    client = Client()

    _, response = sign_in(client)

    assert response.status_code == 403
    assert "Only @studio.test accounts can sign in" in response.content.decode()
    assert signed_in_user(client) is None
    assert not User.objects.filter(email="carla@gmail.com").exists()


def test_a_workspace_claim_from_another_domain_is_refused(google):
    # A lookalike: the email says studio.test, the hosted domain does not.
    google.sign_in_as("carla@studio.test", hd="evil.test")
    client = Client()

    _, response = sign_in(client)

    assert response.status_code == 403
    assert "not managed by the @studio.test Google Workspace" in response.content.decode()
    assert signed_in_user(client) is None


def test_an_unverified_email_is_refused(google):
    google.sign_in_as("carla@studio.test", verified=False)
    client = Client()

    _, response = sign_in(client)

    assert response.status_code == 403
    assert "has not verified carla@studio.test" in response.content.decode()
    assert signed_in_user(client) is None
    assert not User.objects.filter(email="carla@studio.test").exists()


def test_an_admin_email_becomes_admin(google):
    google.sign_in_as("boss@studio.test", sub="20002", given_name="Bea", family_name="Boss")
    client = Client()

    sign_in(client)

    user = signed_in_user(client)
    assert user.email == "boss@studio.test"
    assert user.role == User.Role.ADMIN and user.is_admin and user.is_staff


def test_a_returning_user_signs_in_again_with_fresh_name_and_avatar(google):
    google.sign_in_as("carla@studio.test")
    sign_in(Client())
    google.sign_in_as("carla@studio.test", given_name="Carla B.",
                      picture="https://lh3.googleusercontent.com/a/new")
    client = Client()

    _, response = sign_in(client)

    user = signed_in_user(client)
    assert User.objects.count() == 1
    assert user.first_name == "Carla B."
    assert user.avatar_url == "https://lh3.googleusercontent.com/a/new"
    assert response["Location"] == "/"


def test_a_user_who_left_the_domain_is_refused(google):
    google.sign_in_as("carla@studio.test")
    sign_in(Client())
    # Same Google account (same `sub`), no longer in the company's Workspace.
    google.sign_in_as("carla@elsewhere.test")
    client = Client()

    _, response = sign_in(client)

    assert response.status_code == 403
    assert signed_in_user(client) is None


def test_a_user_added_by_an_admin_is_matched_by_email(google, user):
    # `add_user alice@studio.test --mac-username alice` before her first sign-in.
    google.sign_in_as("alice@studio.test", given_name="Alice", family_name="Artist")
    client = Client()

    _, response = sign_in(client)

    assert signed_in_user(client) == user
    assert SocialAccount.objects.get(user=user).uid == "10001"
    assert response["Location"] == "/"


def test_without_an_allowed_domain_nobody_signs_in_with_google(google, settings):
    settings.ALLOWED_EMAIL_DOMAIN = ""
    google.sign_in_as("carla@studio.test")
    client = Client()

    _, response = sign_in(client)

    assert response.status_code == 403
    assert "ALLOWED_EMAIL_DOMAIN is empty" in response.content.decode()
    assert signed_in_user(client) is None
