"""Test settings: the real database, a fast deterministic embedder, eager tasks."""

from __future__ import annotations

from config.settings import *  # noqa: F403

EMBEDDING_PROVIDER = "fake"
# The companion tests name their own (tests/test_companion.py).
EMBEDDING_COMPANION = ""
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_BROKER_URL = ""
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_ROOT = VAR_DIR / "test-media"  # noqa: F405
# Counters would carry over between tests (every test client is 127.0.0.1);
# the rate-limit tests switch them on with the settings fixture.
RATELIMIT_ENABLE = False
