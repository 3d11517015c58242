"""Django settings for the benchmarks.

The command line (`benchmarks/__main__.py`) chooses the database before Django starts and
passes it through environment variables:

- `REVY_BENCH_DB`: `sqlite` (default) or `postgres`;
- `REVY_BENCH_SQLITE_PATH`: the SQLite database file (a file, as users run it, not `:memory:`);
- `REVY_BENCH_PG_NAME`: the PostgreSQL database created for this run; the server is reached
  through the usual libpq variables `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`;
- `REVY_ONE_STATEMENT=0`: without the one-statement saves and deletes on PostgreSQL (on by
  default).
"""

import os

SECRET_KEY = "revy-benchmarks"
DEBUG = False  # DEBUG=True would log every query and distort the timings
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
REVY_ONE_STATEMENT = os.environ.get("REVY_ONE_STATEMENT", "1") == "1"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "revy.contrib.django",
    "benchmarks.benchapp",
]

if os.environ.get("REVY_BENCH_DB", "sqlite") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
            "NAME": os.environ.get("REVY_BENCH_PG_NAME", "revy_bench"),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("REVY_BENCH_SQLITE_PATH", "revy_bench.sqlite3"),
        }
    }

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
