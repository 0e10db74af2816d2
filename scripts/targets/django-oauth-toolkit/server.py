"""django-oauth-toolkit as an OAuth 2.0 authorization server for MCP clients: a one-file Django
project that configures the toolkit (its settings below) and mounts its URLs at the root, so RFC
8414 metadata is at /.well-known/oauth-authorization-server and the issuer is
http://127.0.0.1:$PORT. The toolkit does the OAuth work; this file adds only what a Django
project supplies: settings, Django's own login page (templates/registration/login.html), the
two test users and two pre-registered clients.

Configured as a careful operator following the toolkit's documentation would: every RFC 9700
(`COMPLIANT_BCP_RFC9700_*`) gate on (S256 only, `iss` in authorization responses, no tokens in
query strings, hashed token storage), PKCE required, refresh tokens rotated with reuse
protection, one-hour access tokens, open Dynamic Client Registration (RFC 7591, as MCP clients
expect). Authorization codes live 60 s (the toolkit's default).

Environment: PORT (default 4200), DB (SQLite file, made fresh by start.sh), TEST_PASSWORD
(the users' password, default "alice-bob-test-pw"). Users: alice, bob. Clients: static-public (public)
and static-confidential (secret "static-secret"), redirect URI http://127.0.0.1:8765/callback.
"""

import os
import sys
from pathlib import Path

import django
from django.conf import settings

PORT = int(os.environ.get("PORT", "4200"))
HERE = Path(__file__).resolve().parent

settings.configure(
    DEBUG=False,
    SECRET_KEY=os.urandom(32).hex(),
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "oauth2_provider",
    ],
    # The middleware of Django's startproject template (messages aside), clickjacking protection
    # included: a stock Django deployment.
    MIDDLEWARE=[
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ],
    TEMPLATES=[{
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [str(HERE / "templates")],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }],
    # Concurrent requests wait for SQLite's write lock (up to 30 s) instead of failing at once:
    # transactions take the lock when they begin (IMMEDIATE), so two of them never deadlock
    # upgrading a read lock ("database is locked"), as Django's SQLite notes advise.
    DATABASES={"default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["DB"],
        "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
    }},
    # Server errors (500) go to the log with their traceback, for whoever reads a run's log.
    LOGGING={
        "version": 1,
        "handlers": {"console": {"class": "logging.StreamHandler"}},
        "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
    },
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    USE_TZ=True,
    LOGIN_URL="/accounts/login/",
    OAUTH2_PROVIDER={
        "SCOPES": {"mcp:read": "Read MCP resources", "mcp:write": "Change MCP resources"},
        "DEFAULT_SCOPES": ["mcp:read"],
        "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
        "REFRESH_TOKEN_REUSE_PROTECTION": True,
        "PKCE_REQUIRED": True,
        "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
        "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
        "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
        "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
        "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
        "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
        "DCR_ENABLED": True,
        "DCR_REGISTRATION_PERMISSION_CLASSES": ("oauth2_provider.dcr.AllowAllDCRPermission",),
    },
)
django.setup()

from django.contrib.auth import views as auth_views  # noqa: E402  (after settings)
from django.urls import include, path  # noqa: E402

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view()),
    path("", include("oauth2_provider.urls", namespace="oauth2_provider")),
]


def seed():
    from django.contrib.auth.models import User
    from oauth2_provider.models import Application

    password = os.environ.get("TEST_PASSWORD", "alice-bob-test-pw")
    for name in ("alice", "bob"):
        User.objects.create_user(name, password=password)
    common = dict(
        redirect_uris="http://127.0.0.1:8765/callback",
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
    )
    Application.objects.create(
        client_id="static-public", name="static-public",
        client_type=Application.CLIENT_PUBLIC, client_secret="", **common,
    )
    Application.objects.create(
        client_id="static-confidential", name="static-confidential",
        client_type=Application.CLIENT_CONFIDENTIAL, client_secret="static-secret", **common,
    )


if __name__ == "__main__":
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    seed()
    print(f"django-oauth-toolkit: issuer http://127.0.0.1:{PORT}", flush=True)
    # Django's development server (threaded), as the toolkit's tutorial runs it.
    call_command("runserver", f"127.0.0.1:{PORT}", use_reloader=False)
