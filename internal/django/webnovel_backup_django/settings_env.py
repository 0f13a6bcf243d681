"""The webnovel-backup environment for this project's database and storage settings.

The binary reads DATABASE_URL and STORAGE_URL (flags given on the command line win over them).
Secrets never go into either URL: a PostgreSQL password travels as PGPASSWORD and S3
credentials as the AWS SDK's variables, so nothing secret appears on a command line that `ps`
shows to every user.
"""

import os
from urllib.parse import quote, urlencode

from django.conf import settings
from django.core.management.base import CommandError

# libpq connection parameters that may be carried from DATABASES OPTIONS into the URL; others
# (psycopg2's isolation_level, cursor_factory, …) mean nothing to the binary.
_PG_URL_OPTIONS = (
    "sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name",
    "target_session_attrs", "options", "service", "passfile",
)


def environment():
    """Returns the variables that point the binary at this project's database and storage."""
    env = {}
    env.update(database_environment(settings.DATABASES.get("default") or {}))
    env.update(storage_environment())
    return env


def database_environment(db):
    """DATABASE_URL (and PGPASSWORD) for a DATABASES entry."""
    engine = db.get("ENGINE", "")
    if "postgresql" in engine or "postgis" in engine:
        return _postgres_environment(db)
    if "sqlite3" in engine or "spatialite" in engine:
        return {"DATABASE_URL": _sqlite_url(db)}
    raise CommandError(
        "DATABASES['default']['ENGINE'] is %r: webnovel-backup backs up PostgreSQL and SQLite only" % engine
    )


def _postgres_environment(db):
    name = str(db.get("NAME") or "")
    if not name:
        raise CommandError("DATABASES['default']['NAME'] is empty: webnovel-backup needs the database name")
    user = str(db.get("USER") or "")
    host = str(db.get("HOST") or "")
    port = str(db.get("PORT") or "")
    options = db.get("OPTIONS") or {}
    query = [(k, str(options[k])) for k in _PG_URL_OPTIONS if k in options]
    netloc = ""
    if user:
        netloc = quote(user, safe="") + "@"
    if host.startswith("/"):
        # A Unix socket folder is a query parameter in a URL.
        query.append(("host", host))
        if port:
            query.append(("port", port))
    elif host:
        netloc += "[%s]" % host if ":" in host else quote(host, safe="")
        if port:
            netloc += ":" + port
    url = "postgres://%s/%s" % (netloc, quote(name, safe=""))
    if query:
        url += "?" + urlencode(query)
    env = {"DATABASE_URL": url}
    password = db.get("PASSWORD")
    if password:
        env["PGPASSWORD"] = str(password)
    return env


def _sqlite_url(db):
    name = str(db.get("NAME") or "")
    if not name or name == ":memory:" or "mode=memory" in name:
        raise CommandError(
            "DATABASES['default']['NAME'] is %r: an in-memory SQLite database cannot be backed up or restored" % name
        )
    if name.startswith("file:"):
        name = name[len("file:"):].split("?", 1)[0]
    # sqlite:/// + /absolute/path gives sqlite:////absolute/path.
    return "sqlite:///" + quote(os.path.abspath(name), safe="/")


def _storage_backend():
    """The dotted path of the default file storage class, for Django 3.2 to 5."""
    storages = getattr(settings, "STORAGES", None) or {}
    default = storages.get("default") or {}
    if default.get("BACKEND"):
        return default["BACKEND"], default.get("OPTIONS") or {}
    return getattr(settings, "DEFAULT_FILE_STORAGE", "") or "", {}


def _is_s3(backend):
    if not backend:
        return False
    if "s3" in backend.lower():
        return True
    try:
        from django.utils.module_loading import import_string

        cls = import_string(backend)
    except Exception:  # an unimportable backend is judged by its name alone
        return False
    return any(c.__module__.startswith("storages.backends.s3") for c in getattr(cls, "__mro__", ()))


def storage_environment():
    """STORAGE_URL (and the S3 credentials) for the default storage."""
    backend, options = _storage_backend()
    if _is_s3(backend):
        return _s3_environment(options)
    root = str(getattr(settings, "MEDIA_ROOT", "") or "")
    if not root:
        raise CommandError(
            "MEDIA_ROOT is empty and the default storage (%s) is not S3: set MEDIA_ROOT to the folder "
            "the files are stored in" % (backend or "FileSystemStorage")
        )
    return {"STORAGE_URL": os.path.abspath(root)}


def _setting(options, option, *names):
    """An S3 setting: the STORAGES OPTIONS key first, then the first settings name that is set."""
    if options.get(option) not in (None, ""):
        return options[option]
    for n in names:
        v = getattr(settings, n, None)
        if v not in (None, ""):
            return v
    return None


def _s3_environment(options):
    bucket = _setting(options, "bucket_name", "AWS_STORAGE_BUCKET_NAME")
    if not bucket:
        raise CommandError("the default storage is S3 but AWS_STORAGE_BUCKET_NAME is not set")
    location = str(_setting(options, "location", "AWS_LOCATION") or "").strip("/")
    endpoint = _setting(options, "endpoint_url", "AWS_S3_ENDPOINT_URL")
    region = _setting(options, "region_name", "AWS_S3_REGION_NAME")
    style = _setting(options, "addressing_style", "AWS_S3_ADDRESSING_STYLE")
    query = []
    if region:
        query.append(("region", str(region)))
    if endpoint:
        query.append(("endpoint", str(endpoint)))
    # S3-compatible services behind an endpoint URL mostly want path-style requests, which
    # is what boto3 picks for them unless told "virtual".
    if style == "path" or (endpoint and style != "virtual"):
        query.append(("path_style", "true"))
    url = "s3://%s/%s" % (bucket, quote(location, safe="/"))
    if query:
        url += "?" + urlencode(query)
    env = {"STORAGE_URL": url}
    credentials = (
        ("AWS_ACCESS_KEY_ID", "access_key", ("AWS_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID")),
        ("AWS_SECRET_ACCESS_KEY", "secret_key", ("AWS_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")),
        ("AWS_SESSION_TOKEN", "security_token", ("AWS_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN")),
    )
    for var, option, names in credentials:
        v = _setting(options, option, *names)
        if v:
            env[var] = str(v)
    verify = _setting(options, "verify", "AWS_S3_VERIFY")
    if isinstance(verify, str) and verify:
        env["AWS_CA_BUNDLE"] = verify
    return env
