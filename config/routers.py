"""Read replicas: which database a query goes to.

Everything uses the primary (``default``) unless a request has been let read
from a replica: ``ReplicaMiddleware`` does that for the GET/HEAD requests of
the views in ``DATABASE_REPLICA_VIEWS`` (the search page, the document page,
the API's reads), and ``ReplicaRouter`` then sends that request's reads of
the models of ``DATABASE_REPLICA_APPS`` to one replica, picked round robin
per request. Writes, migrations, the admin, management commands and Celery
tasks always use the primary.

A replica is skipped while it is down (its failure is remembered for
``REPLICA_RETRY_SECONDS``) or more than ``DATABASE_REPLICA_MAX_LAG`` seconds
behind the primary (checked at most every ``REPLICA_CHECK_SECONDS``). After a
write request the browser reads from the primary for
``DATABASE_REPLICA_PIN_SECONDS``: a signed cookie, not the session, because
reading the session would itself cost a query on every request.

Raw SQL reads use :func:`read_connection` or :func:`read_cursor` instead of
``django.db.connection``. Based on the primary/replica router of the Django
documentation: https://docs.djangoproject.com/en/5.2/topics/db/multi-db/
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper
    from django.db.models import Model
    from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

REPLICA_PREFIX: Final = "replica_"
#: Seconds a replica's lag is trusted before it is measured again.
REPLICA_CHECK_SECONDS: Final = 1.0
#: Seconds a replica that failed to answer is left alone.
REPLICA_RETRY_SECONDS: Final = 10.0
PIN_COOKIE: Final = "dbpin"
_PIN_SALT: Final = "config.routers.pin"
_READ_METHODS: Final = frozenset({"GET", "HEAD"})

# The replica's delay in seconds: none once it has replayed all it received
# from a running WAL receiver (an idle primary sends nothing, and then the
# last replayed commit grows old without the replica falling behind); else
# the age of the last commit it replayed, infinite before the first one.
_LAG_SQL: Final = """
SELECT CASE
    WHEN NOT pg_is_in_recovery() THEN 0
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
         AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver) THEN 0
    ELSE coalesce(
        extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8,
        'Infinity'::float8)
END
"""


@dataclass(slots=True)
class _RequestReads:
    """A request's permission to read from a replica, and the replica it got."""

    chosen: bool = False
    alias: str | None = None


_reads: ContextVar[_RequestReads | None] = ContextVar("replica_reads", default=None)


@dataclass(frozen=True, slots=True)
class ReplicaHealth:
    """What the last check of one replica found."""

    checked_at: float
    #: Seconds behind the primary (infinite when down).
    lag: float
    down: bool = False


class ReplicaPool:
    """The configured replicas, their health, and the round-robin turn."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self._health: dict[str, ReplicaHealth] = {}

    def aliases(self) -> list[str]:
        """The replica aliases of ``DATABASES``, in order."""
        names = [alias for alias in connections if alias.startswith(REPLICA_PREFIX)]
        return sorted(names, key=lambda alias: int(alias.removeprefix(REPLICA_PREFIX) or 0))

    def choose(self) -> str | None:
        """The next usable replica, or None to read from the primary."""
        aliases = self.aliases()
        if not aliases:
            return None
        start = next(self._turn)
        for offset in range(len(aliases)):
            alias = aliases[(start + offset) % len(aliases)]
            if self.usable(alias):
                return alias
        return None

    def usable(self, alias: str) -> bool:
        """Whether ``alias`` answers and is at most the allowed lag behind."""
        now = time.monotonic()
        with self._lock:
            health = self._health.get(alias)
        retry_after = REPLICA_RETRY_SECONDS if health and health.down else REPLICA_CHECK_SECONDS
        if health is None or now - health.checked_at >= retry_after:
            health = self._check(alias, now)
            with self._lock:
                self._health[alias] = health
        return not health.down and health.lag <= float(settings.DATABASE_REPLICA_MAX_LAG)

    def status(self) -> dict[str, ReplicaHealth]:
        """The last check of each replica checked so far."""
        with self._lock:
            return dict(self._health)

    def reset(self) -> None:
        """Forget every check and restart the turn (settings changed, tests)."""
        with self._lock:
            self._health.clear()
            self._turn = itertools.count()

    def _check(self, alias: str, now: float) -> ReplicaHealth:
        connection = connections[alias]
        try:
            # Connecting is the liveness check: OPTIONS carry a short
            # connect_timeout (config.database.replica_settings).
            with connection.cursor() as cursor:
                cursor.execute(_LAG_SQL)
                (lag,) = cursor.fetchone()
        except DatabaseError:
            logger.warning(
                "Replica %s does not answer; reading from the primary for %.0f s",
                alias,
                REPLICA_RETRY_SECONDS,
                exc_info=True,
            )
            with contextlib.suppress(DatabaseError):
                connection.close()
            return ReplicaHealth(checked_at=now, lag=math.inf, down=True)
        lag = float(lag)
        if lag > float(settings.DATABASE_REPLICA_MAX_LAG):
            logger.warning("Replica %s is %.1f s behind the primary: skipped", alias, lag)
        return ReplicaHealth(checked_at=now, lag=lag)


replicas = ReplicaPool()


def is_replica(alias: str | None) -> bool:
    """Whether ``alias`` names a replica (``replica_<n>``)."""
    return alias is not None and alias.startswith(REPLICA_PREFIX)


def _in_celery_task() -> bool:
    # Tasks read from the primary, and an eager one (no broker) runs inside
    # the request that queued it.
    from celery import current_task

    return bool(current_task)


def current_replica() -> str | None:
    """The replica this request reads from, or None (no permission, none usable).

    Chosen on the first read of the request and kept for the rest of it, so
    that one page never mixes replicas that have replayed different amounts.
    """
    reads = _reads.get()
    if reads is None or _in_celery_task():
        return None
    if not reads.chosen:
        reads.alias, reads.chosen = replicas.choose(), True
    return reads.alias


@contextlib.contextmanager
def replica_reads() -> Iterator[None]:
    """Let the reads inside the block use a replica (the middleware's scope)."""
    token = _reads.set(_RequestReads())
    try:
        yield
    finally:
        _reads.reset(token)


def read_connection() -> BaseDatabaseWrapper:
    """The connection for raw SQL reads of the documents: a replica or the primary."""
    return connections[current_replica() or DEFAULT_DB_ALIAS]


@contextlib.contextmanager
def read_cursor(*, atomic: bool = False) -> Iterator[CursorWrapper]:
    """A cursor of :func:`read_connection`; ``atomic`` wraps it in a transaction
    of that connection (for ``SET LOCAL``)."""
    connection = read_connection()
    block = transaction.atomic(using=connection.alias) if atomic else contextlib.nullcontext()
    with block, connection.cursor() as cursor:
        yield cursor


class ReplicaRouter:
    """Reads of the replica apps go to the request's replica; all else to the primary."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        if _reads.get() is None or model._meta.app_label not in settings.DATABASE_REPLICA_APPS:
            return None
        return current_replica()

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        # Explicit: without an answer Django writes an instance back to the
        # database it was read from, which may be a replica.
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool | None:
        # Replicas hold the primary's rows: objects from any of them relate.
        databases = {obj1._state.db, obj2._state.db}
        if all(db == DEFAULT_DB_ALIAS or is_replica(db) for db in databases):
            return True
        return None

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        # Replicas replay the primary's migrations; other aliases keep
        # Django's default.
        return False if is_replica(db) else None


def _pinned(request: HttpRequest) -> bool:
    seconds = int(settings.DATABASE_REPLICA_PIN_SECONDS)
    if seconds <= 0 or PIN_COOKIE not in request.COOKIES:
        return False
    value = request.get_signed_cookie(PIN_COOKIE, default=None, salt=_PIN_SALT, max_age=seconds)
    return value is not None


class ReplicaMiddleware:
    """Let GET/HEAD requests of ``DATABASE_REPLICA_VIEWS`` read from a replica,
    and pin a browser to the primary for a while after it wrote.

    The pin is a signed cookie whose signature carries its time, so a browser
    that keeps it longer than ``DATABASE_REPLICA_PIN_SECONDS`` is not pinned
    any longer. Without replicas the middleware neither reads nor sets it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # A fresh scope per request: process_view grants replica reads in it.
        token = _reads.set(None)
        try:
            response = self.get_response(request)
        finally:
            _reads.reset(token)
        if request.method not in _READ_METHODS and replicas.aliases():
            seconds = int(settings.DATABASE_REPLICA_PIN_SECONDS)
            if seconds > 0:
                response.set_signed_cookie(
                    PIN_COOKIE,
                    "1",
                    salt=_PIN_SALT,
                    max_age=seconds,
                    secure=settings.SESSION_COOKIE_SECURE,
                    httponly=True,
                    samesite="Lax",
                )
        return response

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> None:
        match = request.resolver_match
        if (
            request.method in _READ_METHODS
            and match is not None
            and match.view_name in settings.DATABASE_REPLICA_VIEWS
            and replicas.aliases()
            and not _pinned(request)
        ):
            _reads.set(_RequestReads())
