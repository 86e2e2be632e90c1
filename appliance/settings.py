"""Settings of the lbadmin appliance.

Everything comes from environment variables (listed in the README) with defaults that run on
one machine with no servers: an SQLite file and a filesystem Celery broker under ``var/``.
Set ``DATABASE_URL`` and ``CELERY_BROKER_URL`` to use PostgreSQL and Redis.
"""

import os
import secrets
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdecimal() or int(value) < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, not {value!r}")
    return int(value)


def persistent_secret_key(path: Path) -> str:
    """Read the appliance's secret key, creating it (mode 0600) on first start."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


# --- Where the appliance keeps its state -------------------------------------------------------

LBADMIN_VAR_DIR = Path(env_str("LBADMIN_VAR_DIR", str(BASE_DIR / "var"))).resolve()
# Only this user may enter it (with the umask in appliance/__init__.py, for a new var/; the
# serve command tightens an old one).
LBADMIN_VAR_DIR_MODE = 0o700
LBADMIN_APPLIANCE_NAME = env_str("LBADMIN_APPLIANCE_NAME", "Loadbalancer")
LBADMIN_HTTPS_BIND = env_str("LBADMIN_HTTPS_BIND", "0.0.0.0")  # noqa: S104 - the WebUI listens on every interface like the appliance
LBADMIN_HTTPS_PORT = env_int("LBADMIN_HTTPS_PORT", 9443, minimum=1)
LBADMIN_TLS_CERT = Path(env_str("LBADMIN_TLS_CERT", str(LBADMIN_VAR_DIR / "tls" / "webui.crt")))
LBADMIN_TLS_KEY = Path(env_str("LBADMIN_TLS_KEY", str(LBADMIN_VAR_DIR / "tls" / "webui.key")))
# Encrypts certificates' private keys at rest; kept outside the database (made on first use).
LBADMIN_SECRETS_KEY_FILE = Path(
    env_str("LBADMIN_SECRETS_KEY_FILE", str(LBADMIN_VAR_DIR / "secrets" / "certificates.key"))
)
# Whether this node starts HAProxy, stunnel and keepalived itself, with their files under var/.
LBADMIN_MANAGE_DAEMONS = env_bool("LBADMIN_MANAGE_DAEMONS", True)
# Local Configuration changes this host's network only when the host is the appliance's (an
# appliance image sets it); on a container or a laptop the live state is shown read-only.
LBADMIN_MANAGE_NETWORK = env_bool("LBADMIN_MANAGE_NETWORK", False)
# The network namespace to manage ("" = the appliance's own); tests give one they made.
LBADMIN_NETWORK_NETNS = env_str("LBADMIN_NETWORK_NETNS", "")
# Where hostname, resolv.conf and hosts are written (/etc on an appliance).
LBADMIN_ETC_DIR = Path(
    env_str("LBADMIN_ETC_DIR", "/etc" if LBADMIN_MANAGE_NETWORK else str(LBADMIN_VAR_DIR / "etc"))
)
LBADMIN_NETWORK_CONFIRM_SECONDS = env_int("LBADMIN_NETWORK_CONFIRM_SECONDS", 60, minimum=5)

# The appliance's factory credentials, as in the deployment guide.
LBADMIN_DEFAULT_USERNAME = "loadbalancer"
LBADMIN_DEFAULT_PASSWORD = "loadbalancer"  # noqa: S105 - the documented factory default

# Login throttling: failures counted inside the window; reaching a limit locks out for the window.
# Only the guessing source is held back, never an account for every address (lbadmin.services.auth).
LBADMIN_LOGIN_WINDOW_SECONDS = env_int("LBADMIN_LOGIN_WINDOW_SECONDS", 900, minimum=1)
# Failures on one account from one address that lock that address out of that account (the name
# predates per-address counting; kept so existing environments keep working).
LBADMIN_LOGIN_MAX_FAILURES_PER_USER = env_int("LBADMIN_LOGIN_MAX_FAILURES_PER_USER", 5, minimum=1)
LBADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS = env_int(
    "LBADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS", 20, minimum=1
)
# After this many failures on one account from one address, each further attempt from there
# must wait (2 ** extra failures) seconds.
LBADMIN_LOGIN_THROTTLE_AFTER = env_int("LBADMIN_LOGIN_THROTTLE_AFTER", 3, minimum=1)

# --- Django core -------------------------------------------------------------------------------

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or persistent_secret_key(
    LBADMIN_VAR_DIR / "secret_key"
)
DEBUG = env_bool("DJANGO_DEBUG", False)
# An appliance is reached by whatever address the administrator gave it.
ALLOWED_HOSTS = [h.strip() for h in env_str("LBADMIN_ALLOWED_HOSTS", "*").split(",") if h.strip()]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "js_lib_htmx",
    "lbadmin",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "lbadmin.middleware.RequestBodyLimit",  # before anything reads the body (CSRF's view hook)
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "lbadmin.middleware.IdleTimeout",
    "lbadmin.middleware.DefaultPasswordGuard",
    "lbadmin.middleware.SlaveReadOnly",
]

# Each route's own bound is lbadmin.middleware.RequestBodyLimit's; these are Django's backstops at
# the largest of them. A configuration pushed to the HA slave is one JSON body (the benchmark's
# 10,000 real servers make ~3 MB). Uploads (at most 1 MB with the form) stay in memory: nothing
# a request sends is written to disk.
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024 + 1
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
DATA_UPLOAD_MAX_NUMBER_FILES = 10

ROOT_URLCONF = "appliance.urls"
WSGI_APPLICATION = "appliance.wsgi.application"

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
                "lbadmin.context_processors.appliance",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{LBADMIN_VAR_DIR / 'lbadmin.sqlite3'}"),
        conn_max_age=60,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # gunicorn threads and the Celery worker write concurrently: take the write lock at the
    # start of each transaction and wait for it, instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "lbadmin.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "lbadmin.validators.CharacterClassValidator"},
    {"NAME": "lbadmin.validators.NotFactoryDefaultValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- URLs: the WebUI lives under /lbadmin/ as on the appliance ---------------------------------

STATIC_URL = "/lbadmin/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise serves the few static files straight from the apps' folders: no collectstatic step.
WHITENOISE_USE_FINDERS = True
LOGIN_URL = "lbadmin:login"
LOGIN_REDIRECT_URL = "lbadmin:overview"
LOGOUT_REDIRECT_URL = "lbadmin:login"

# --- Security of the management plane: HTTPS only ----------------------------------------------

SECURE_SSL_REDIRECT = env_bool("LBADMIN_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("LBADMIN_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Strict"
SESSION_COOKIE_NAME = "lbadmin_session"
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Strict"
CSRF_COOKIE_NAME = "lbadmin_csrftoken"
X_FRAME_OPTIONS = "DENY"
# Idle timeout: the session ends after this many seconds without a request from the
# administrator (lbadmin.middleware.IdleTimeout: the pages' own polling does not count).
SESSION_COOKIE_AGE = env_int("LBADMIN_SESSION_TIMEOUT", 1800, minimum=60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# The appliance has no public name, so browsers' HSTS preload lists cannot apply to it.
SILENCED_SYSTEM_CHECKS = ["security.W021"]

# --- Celery: Redis in production, a filesystem broker when no broker server is configured -----

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(LBADMIN_VAR_DIR / "broker" / "queue"),
        "data_folder_out": str(LBADMIN_VAR_DIR / "broker" / "queue"),
        "control_folder": str(LBADMIN_VAR_DIR / "broker" / "control"),
        "processed_folder": str(LBADMIN_VAR_DIR / "broker" / "processed"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem:")
    else {}
)
CELERY_RESULT_BACKEND = env_str(
    "CELERY_RESULT_BACKEND",
    CELERY_BROKER_URL
    if CELERY_BROKER_URL.startswith(("redis:", "rediss:"))
    else f"file://{LBADMIN_VAR_DIR / 'broker' / 'results'}",
)
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "lbadmin")
# Pushes to the HA slave have a queue (and a worker) of their own: a slave that does not answer
# must never hold up this node's applies, which run one at a time on the default queue.
CELERY_HA_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}-ha"
CELERY_TASK_ROUTES = {"lbadmin.tasks.ha_sync_task": {"queue": CELERY_HA_QUEUE}}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Logging: security events (logins, lockouts) go to their own logger ------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        "lbadmin": {"handlers": ["console"], "level": env_str("LBADMIN_LOG_LEVEL", "INFO")},
        "django": {"handlers": ["console"], "level": "WARNING"},
    },
}
