"""Django settings of the API-at-scale run (`python -m benchmarks --db postgres --api-scale`).

The benchmark settings plus what revy's API needs: Django REST framework, django-filter,
strawberry-django, sessions and authentication (requests are made through Django's test client,
so every middleware, authentication and permission runs as it would behind a server).
"""

from benchmarks.settings import *  # noqa: F403

INSTALLED_APPS = [
    *INSTALLED_APPS,  # noqa: F405
    "django.contrib.sessions",
    "rest_framework",
    "django_filters",
    "strawberry_django",
    "revy_api",
]
ROOT_URLCONF = "benchmarks.urls"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
}
