"""Settings for revy's test suite: SQLite by default, PostgreSQL when REVY_DB=postgres."""

import os

SECRET_KEY = "revy-tests"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "/static/"  # the live server (pytest-django's live_server) serves static files

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "strawberry_django",
    "revy.contrib.django",
    "revy_api",  # the API plugin's system checks (REVY_API)
    "tests.testapp",
    "tests.behaviourapp",
    "tests.renameapp",
    "tests.recoveryapp",
    "tests.trustapp",  # the model-based history test
    # The demo project's apps: its API is tested (and its contracts exported) in-process.
    "example.organizations",
    "example.ledger",
    "example.garage",
    "example.api",
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.DjangoModelPermissions"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

REVY_API = {"ORGANIZATION_RESOLVER": "tests.testapp.resolvers.member_organization"}

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# A second database ("other") for the tests of history in several databases; only the tests
# that ask for it (`django_db(databases=...)`) set it up.
if os.environ.get("REVY_DB") == "postgres":
    POSTGRES = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "54329"),
        "USER": os.environ.get("PGUSER", "revy"),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "NAME": os.environ.get("PGDATABASE", "revy"),
    }
    DATABASES = {
        # One test database per run, so that several runs can share one server.
        "default": {**POSTGRES, "TEST": {"NAME": f"test_revy_{os.getpid()}"}},
        "other": {**POSTGRES, "TEST": {"NAME": f"test_revy_other_{os.getpid()}"}},
    }
else:
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    }

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

REVY_MASKED_FIELDS = ("auth.User.password", "testapp.Secret.pin")
REVY_AGGREGATES = {"testapp.Cylinder": ["engine"], "garage.Cylinder": ["engine"]}
REVY_EXCLUDED_MODELS = ("testapp.Untracked",)
REVY_EXCLUDED_FIELDS = ("testapp.Secret.internal",)
# REVY_ONE_STATEMENT=0 runs the whole suite without the one-statement saves (on by default).
REVY_ONE_STATEMENT = os.environ.get("REVY_ONE_STATEMENT", "1") == "1"
