"""Settings of the test project, as the platform's: auth, contenttypes, books, accounts.

The tests choose the database and storage through the environment:
WNB_TEST_DATABASE is DATABASES['default'] as JSON, WNB_TEST_MEDIA_ROOT the MEDIA_ROOT, and
WNB_TEST_S3, when set, the django-storages S3 settings as JSON (names as in settings.py).
"""
import json
import os

SECRET_KEY = "test-only"
DEBUG = False
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "books",
    "accounts",
    "webnovel_backup_django",
]
AUTH_USER_MODEL = "accounts.User"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

DATABASES = {"default": json.loads(os.environ.get("WNB_TEST_DATABASE") or "{}") or {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": os.path.join(os.getcwd(), "db.sqlite3"),
}}
MEDIA_ROOT = os.environ.get("WNB_TEST_MEDIA_ROOT", os.path.join(os.getcwd(), "media"))

if os.environ.get("WNB_TEST_S3"):
    DEFAULT_FILE_STORAGE = "storages.backends.s3boto3.S3Boto3Storage"
    globals().update(json.loads(os.environ["WNB_TEST_S3"]))
