"""Sinkhole's one settings module. Every value comes from the environment and has a working
default: with nothing configured Sinkhole runs embedded (SQLite, a file-system Celery broker,
artifacts on local disk); production sets DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY and friends.
docs/configuration.md lists every variable."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    persistent_secret,
    refuse_unknown,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# Where the embedded mode keeps its state: the SQLite file, the broker's queue folders, artifacts.
DATA_DIR = Path(env_str("SINKHOLE_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY", "") or persistent_secret(DATA_DIR / "secret_key")
if not DEBUG and (len(SECRET_KEY) < 32 or SECRET_KEY.startswith("django-insecure")):
    raise ImproperlyConfigured(
        "SECRET_KEY is too weak for DEBUG=False: use at least 32 random characters "
        "(or leave it unset and Sinkhole keeps a random one in SINKHOLE_DATA_DIR/secret_key)"
    )

# Keyed hashes of rater ids and client addresses use their own secret, so that rotating the
# session-signing SECRET_KEY does not split every rater's history in two.
RATER_HASH_KEY = env_str("RATER_HASH_KEY", SECRET_KEY)

# /metrics answers to `Authorization: Bearer <this>` (a Prometheus scraper) and to signed-in
# people with a role; empty: only to signed-in people (source names appear in its labels).
METRICS_TOKEN = env_str("SINKHOLE_METRICS_TOKEN", "")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "apps.core",
    "apps.sources",
    "apps.feedback",
    "apps.quality",
    "apps.peers",
    "apps.curation",
    "apps.datasets",
    "apps.registry",
    "apps.training",
    "apps.evaluation",
    "apps.serving",
    "apps.judges",
    "apps.site",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "apps.core.middleware.RequestLogMiddleware",
    "apps.core.middleware.ApiErrorMiddleware",  # every /api/ error as JSON; chunked bodies
    "apps.sources.cors.FeedbackCorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out login into its 429 page
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "frontend" / "templates"],
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

# --- Database: DATABASE_URL, or the embedded SQLite file -------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "")
# Demo pages (/demo/widget) issue a publishable key to whoever opens them: on by default only
# with DEBUG or in embedded mode.
SINKHOLE_DEMO_PAGES = env_bool("SINKHOLE_DEMO_PAGES", DEBUG or not DATABASE_URL)
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60), conn_health_checks=True
        )
    }
    # Two test runs on one server (parallel checkouts) each need their own test database.
    if TEST_DATABASE_NAME := env_str("TEST_DATABASE_NAME", ""):
        DATABASES["default"]["TEST"] = {"NAME": TEST_DATABASE_NAME}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "sinkhole.sqlite3"),
            # Tests use a file, not Django's in-memory default, so that a real Celery worker
            # (tests/core/test_worker.py) can open the same database; the pid keeps two test
            # runs in one checkout apart.
            "TEST": {"NAME": str(DATA_DIR / f"test_sinkhole_{os.getpid()}.sqlite3")},
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The worker writes beside the web process: wait for the lock instead of failing, and take
    # it at the start of a write transaction so two writers never deadlock. (A sqlite:// URL
    # gets the same options: the worker test points its worker at the test database that way.)
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate limits): CACHE_URL=redis://… in production, process memory embedded ----------
CACHE_URL = env_str("CACHE_URL", "")
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            # A Redis that hangs must not hang ingest: the rate limits fall back to counting per
            # process (apps/sources/ratelimit.py) once a command takes longer than this.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
elif CACHE_URL:
    raise ImproperlyConfigured(f"CACHE_URL={CACHE_URL!r}: only redis:// URLs are supported")
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery: CELERY_BROKER_URL, or the embedded file-system broker ----------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://localhost//")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = DATA_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Fan-out exchanges (worker remote control) live here; kombu's default is ./control.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # Seconds between looks at an empty queue folder (kombu's default, 1, made a worker take
        # about one task a second): listing a folder ten times a second costs nothing.
        "polling_interval": 0.1,
    }
    # A web process may enqueue before any worker has started: the folders must already exist.
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
elif CELERY_BROKER_URL.startswith("redis://"):
    # kombu's Redis transport, publishing through a kept client (apps/core/broker.py: a new
    # client per message was a sixth of an ingest request's CPU).
    CELERY_BROKER_TRANSPORT = "apps.core.broker:Transport"
    # A message a worker took but never acknowledged (the worker was killed) goes back to its
    # queue after this many seconds (kombu's default: an hour). The short queues' work is found
    # in the database anyway (the reconciler); a `training.run` delivered again while its run
    # is still going is ignored by the run's claim.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 300),
        # A web process sending a hint to a Redis that is down gives up at once (kombu's default
        # retries for seconds): the event is stored already, the workers' drain finds it.
        "max_retries": 1,
        "socket_connect_timeout": 1,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_QUEUES = env_list(
    "CELERY_WORKER_QUEUES", ["default", "ingest", "quality", "datasets", "training"]
)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Artifacts --------------------------------------------------------------------------------
ARTIFACT_ROOT = Path(env_str("ARTIFACT_ROOT", str(DATA_DIR / "artifacts"))).resolve()

# --- Curation, training, registry, evaluation, serving ---------------------------------------
CURATION_BULK_MAX = env_int("CURATION_BULK_MAX", 5000)
TRAINING_HEARTBEAT_TIMEOUT = env_int("TRAINING_HEARTBEAT_TIMEOUT", 120)
TRAINING_MAX_ATTEMPTS = env_int("TRAINING_MAX_ATTEMPTS", 3)
TRAINING_SOFT_TIME_LIMIT = env_int("TRAINING_SOFT_TIME_LIMIT", 12 * 3600)
ARTIFACT_S3_URL = env_str("ARTIFACT_S3_URL", "")
ARTIFACT_S3_ENDPOINT_URL = env_str("ARTIFACT_S3_ENDPOINT_URL", "")
VLLM_URL = env_str("VLLM_URL", "")
VLLM_API_KEY = env_str("VLLM_API_KEY", "")
EVALUATION_MIN_BATTLES = env_int("EVALUATION_MIN_BATTLES", 20)
SERVING_UPSTREAM_URL = env_str("SERVING_UPSTREAM_URL", "")
SERVING_UPSTREAM_API_KEY = env_str("SERVING_UPSTREAM_API_KEY", "")
SERVING_UPSTREAM_TIMEOUT = env_int("SERVING_UPSTREAM_TIMEOUT", 120)
SERVING_DEVICE = env_str("SERVING_DEVICE", "auto")
SERVING_MAX_MODELS = env_int("SERVING_MAX_MODELS", 4)
SERVING_DEFAULT_MAX_TOKENS = env_int("SERVING_DEFAULT_MAX_TOKENS", 256)
SERVING_MAX_TOKENS = env_int("SERVING_MAX_TOKENS", 2048)
# Judges (docs/judges.md): the offline gate before canary.
JUDGES_REQUIRE_GATE = env_bool("JUDGES_REQUIRE_GATE", False)  # publish to an alias needs a pass
JUDGES_GATE_LINE = env_float("JUDGES_GATE_LINE", 0.5)  # pass: lower end above it
JUDGES_GATE_PROMPTS = env_int("JUDGES_GATE_PROMPTS", 50)
JUDGES_GATE_MAX_TOKENS = env_int("JUDGES_GATE_MAX_TOKENS", 96)
JUDGES_GATE_CONCURRENCY = env_int("JUDGES_GATE_CONCURRENCY", 4)
JUDGES_GATE_BATCH = env_int("JUDGES_GATE_BATCH", 8)  # prompts per generate, built-in engine
JUDGES_DEFAULT_JUDGE = env_str("JUDGES_DEFAULT_JUDGE", "")  # blank: the newest reward model

# --- Ingest limits ----------------------------------------------------------------------------
INGEST_MAX_BATCH_EVENTS = env_int("INGEST_MAX_BATCH_EVENTS", 1000)
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 5 * 1024 * 1024)
# Admission control: a batch is answered 429 (Retry-After) while the events already stored
# would take the workers more than this many seconds to judge (0: never). 60 s keeps the
# promise that a burst is judged within 2 minutes (docs/benchmarks.md, issue 12).
INGEST_BACKLOG_SECONDS = env_int("INGEST_BACKLOG_SECONDS", 60)
# ... and only once at least this many events wait (a small install is never turned away).
INGEST_BACKLOG_MIN_EVENTS = env_int("INGEST_BACKLOG_MIN_EVENTS", 2000)
# Django refuses bodies over this before a view sees them; ingest answers 413 itself first.
DATA_UPLOAD_MAX_MEMORY_SIZE = INGEST_MAX_BODY_BYTES + 1024 * 1024
# An event's `timestamp` must lie between this date (or ISO date-time, UTC unless it says) and
# now + this many days; outside it is a 400 naming the field.
FEEDBACK_TIMESTAMP_MIN = env_str("FEEDBACK_TIMESTAMP_MIN", "2000-01-01")
FEEDBACK_TIMESTAMP_MAX_AHEAD_DAYS = env_int("FEEDBACK_TIMESTAMP_MAX_AHEAD_DAYS", 1)

# --- Auth, static, i18n -----------------------------------------------------------------------
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/inbox/"
# Login throttling (django-axes, apps/curation/throttle.py): LOGIN_FAILURE_LIMIT wrong passwords
# for one username from one IP address lock that pair out for LOGIN_LOCKOUT_MINUTES (a 429 page
# that says so); a correct password resets the count. `manage.py axes_reset` unlocks everyone.
AUTHENTICATION_BACKENDS = [
    "apps.curation.throttle.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env_bool("LOGIN_THROTTLING", True)
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "apps.curation.throttle.lockout_response"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "frontend" / "static"]
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
)

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.sources.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "apps.core.renderers.OrjsonRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["apps.core.parsers.OrjsonParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Sinkhole API",
    "DESCRIPTION": (
        "Feedback ingest and read API. Authenticate with `Authorization: Bearer <key>`: secret keys "
        "(`sk-…`) ingest and read, publishable keys (`pk-…`) only ingest, from the source's allowed "
        "browser origins."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Choice sets that share a field name get names of their own (else a hash suffix).
    "ENUM_NAME_OVERRIDES": {
        "DatasetKindEnum": "apps.datasets.models.Kind",
        "DatasetVersionStatusEnum": "apps.datasets.models.DatasetVersion.Status",
        "TrainingRunStatusEnum": "apps.training.models.TrainingRun.Status",
        "EventStatusEnum": "apps.feedback.models.Event.Status",
        "CheckpointKindEnum": "apps.registry.models.Checkpoint.Kind",
        "JudgeKindEnum": "apps.judges.models.Judge.Kind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.feedback.openapi.add_event_components",
    ],
}

# --- Logging: one JSON object per line ---------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOG_FORMAT = env_str("LOG_FORMAT", "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT if LOG_FORMAT in {"json", "plain"} else "json",
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
    },
}

# --- Quality pipeline knobs (apps/quality/conf.py reads them) ---------------------------------
# Velocity: events per rater / per client address / per source in a sliding window; 0 = off.
# Addresses are off by default: a front-end that posts from its server sends every user's
# feedback from one address. Turn them on where events come straight from browsers.
QUALITY_RATER_PER_MINUTE = env_int("QUALITY_RATER_PER_MINUTE", 20)
QUALITY_RATER_PER_HOUR = env_int("QUALITY_RATER_PER_HOUR", 300)
QUALITY_IP_PER_MINUTE = env_int("QUALITY_IP_PER_MINUTE", 0)
QUALITY_IP_PER_HOUR = env_int("QUALITY_IP_PER_HOUR", 0)
QUALITY_SOURCE_PER_MINUTE = env_int("QUALITY_SOURCE_PER_MINUTE", 0)
QUALITY_SOURCE_PER_HOUR = env_int("QUALITY_SOURCE_PER_HOUR", 0)
# Floods: the same or nearly the same comment from several raters within a window.
QUALITY_FLOOD_WINDOW_SECONDS = env_int("QUALITY_FLOOD_WINDOW_SECONDS", 6 * 3600)
QUALITY_FLOOD_MIN_RATERS = env_int("QUALITY_FLOOD_MIN_RATERS", 4)
QUALITY_FLOOD_MIN_REPEATS = env_int("QUALITY_FLOOD_MIN_REPEATS", 4)
QUALITY_FLOOD_MIN_CHARS = env_int("QUALITY_FLOOD_MIN_CHARS", 24)
QUALITY_FLOOD_MIN_WORDS = env_int("QUALITY_FLOOD_MIN_WORDS", 4)
# SimHash bits; at most 3 so that one of four 16-bit bands matches.
QUALITY_FLOOD_MAX_DISTANCE = env_int("QUALITY_FLOOD_MAX_DISTANCE", 3)
# Rater reputation.
QUALITY_DAILY_VOTE_CAP = env_int("QUALITY_DAILY_VOTE_CAP", 300)
QUALITY_OUTLIER_ALPHA = env_float("QUALITY_OUTLIER_ALPHA", 0.05)
QUALITY_OUTLIER_MIN_PAIR_VOTES = env_int("QUALITY_OUTLIER_MIN_PAIR_VOTES", 20)
QUALITY_OUTLIER_MIN_RATER_VOTES = env_int("QUALITY_OUTLIER_MIN_RATER_VOTES", 10)
QUALITY_LOW_TRUST = env_float("QUALITY_LOW_TRUST", 0.25)
QUALITY_LOW_TRUST_MIN_EVENTS = env_int("QUALITY_LOW_TRUST_MIN_EVENTS", 10)
# The learned classifier, and how often beat asks for it to be retrained.
QUALITY_CLASSIFIER_REJECT = env_float("QUALITY_CLASSIFIER_REJECT", 0.98)
QUALITY_RETRAIN_MIN_NEW_LABELS = env_int("QUALITY_RETRAIN_MIN_NEW_LABELS", 20)
QUALITY_RETRAIN_SECONDS = env_int("QUALITY_RETRAIN_SECONDS", 3600)
# Judging: events per batch.
QUALITY_BATCH_SIZE = env_int("QUALITY_BATCH_SIZE", 1000)

# --- No unknown variable of our own prefixes (keep this section last) --------------------------
# A SINKHOLE_* or QUALITY_* variable that nothing reads is a typo: start-up fails and names the
# nearest known one. These are read outside this module (docs/configuration.md says by what).
READ_OUTSIDE_SETTINGS = (
    "SINKHOLE_MODEL_CACHE",  # trainer/models.py
    "SINKHOLE_TRAIN_FREE_MEMORY",  # trainer/memory.py
    "SINKHOLE_TRAIN_LOGPS_CACHE",  # trainer/run.py
    "SINKHOLE_PORT",  # docker-compose.yml
    "SINKHOLE_URL",  # the SDK and the plugins, in the shell of whoever runs them
    "SINKHOLE_KEY",
    "SINKHOLE_RATER",
)
refuse_unknown(prefixes=("SINKHOLE_", "QUALITY_"), also_known=READ_OUTSIDE_SETTINGS)
