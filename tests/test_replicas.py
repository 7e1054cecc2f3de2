"""Read replicas against a real streaming hot standby of the tests' server.

The standby is a ``pg_basebackup`` of the primary taken once the test
database exists; the tests commit (``transaction=True``) so that what they
write reaches it by streaming replication.
"""

from __future__ import annotations

import contextlib
import math
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from celery import shared_task
from django.contrib.auth.models import User
from django.core import signing
from django.db import DatabaseError, connection, connections, router
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from config.database import replica_settings
from config.routers import PIN_COOKIE, read_connection, replica_reads, replicas
from documents.models import Document
from tests.factories import make_document
from tests.replica_server import Standby, allow_local_replication

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pytest_django.fixtures import Settings as SettingsWrapper
    from pytest_django.plugin import DjangoDbBlocker

REPLICA = "replica_0"
with_replica = pytest.mark.django_db(transaction=True, databases=["default", REPLICA])


# -- The standby and its DATABASES entry ---------------------------------------


@pytest.fixture(scope="module")
def standby(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Iterator[Standby]:
    """A hot standby of the primary, taken after the test database was made."""
    config = connection.settings_dict
    if not str(config["HOST"]).startswith("/"):
        pytest.skip("the standby is made from the embedded server (a Unix socket)")
    primary: dict[str, Any] = {
        "host": config["HOST"],
        "port": int(config["PORT"] or 5432),
        "user": config["USER"],
    }
    if config["PASSWORD"]:
        primary["password"] = config["PASSWORD"]
    with django_db_blocker.unblock():
        allow_local_replication(primary)
        server = Standby.create(primary=primary)
    yield server
    server.remove()


@pytest.fixture(scope="module")
def replica_alias(standby: Standby) -> Iterator[str]:
    """``replica_0`` in ``DATABASES``, as DATABASE_REPLICA_URLS would add it."""
    _add_alias(REPLICA, standby.connection_url(dbname=connection.settings_dict["NAME"]))
    replicas.reset()
    yield REPLICA
    _forget_alias(REPLICA)
    replicas.reset()


def _add_alias(alias: str, url: str) -> None:
    databases = connections.settings
    entry = replica_settings(urls=[url], conn_max_age=60)[REPLICA]
    databases[alias] = connections.configure_settings(
        {"default": databases["default"], alias: entry}
    )[alias]


def _forget_alias(alias: str) -> None:
    connections[alias].close()
    with contextlib.suppress(AttributeError):
        del connections[alias]
    del connections.settings[alias]


@pytest.fixture
def replica(replica_alias: str, standby: Standby) -> Iterator[Standby]:
    """The standby, configured, with the router's memory of it cleared."""
    replicas.reset()
    yield standby
    replicas.reset()


@pytest.fixture
def paused(replica: Standby) -> Iterator[Standby]:
    """The standby with its replay paused (resumed, and caught up, afterwards)."""
    replica.pause_replay()
    yield replica
    replica.resume_replay()
    replica.wait_until_replayed()


@pytest.fixture
def staff() -> User:
    return User.objects.create_user("reader", password="pw-reader-123")


@pytest.fixture
def reader(client: Client, staff: User) -> Client:
    client.force_login(staff)
    return client


@shared_task
def _read_alias() -> str:
    return str(read_connection().alias)


def _turns(count: int) -> list[str]:
    """The database each of ``count`` replica-reading requests reads from."""
    aliases = []
    for _ in range(count):
        with replica_reads():
            aliases.append(read_connection().alias)
    return aliases


def _sql(queries: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in queries.captured_queries]


def _reads_documents(sql: str) -> bool:
    return "documents_document" in sql or "documents_chunk" in sql


# -- Without replicas (first: the module's standby is not configured yet) -------


@pytest.mark.django_db
class TestWithoutReplicas:
    def test_reads_use_the_primary(self) -> None:
        """With DATABASE_REPLICA_URLS empty, replica reads are the primary's."""
        assert [alias for alias in connections if alias.startswith("replica_")] == []
        with replica_reads():
            assert router.db_for_read(Document) == "default"
            assert read_connection() is connections["default"]

    def test_writes_set_no_pin(self, client: Client, user: User) -> None:
        """Without replicas a POST gets no pin cookie."""
        client.force_login(user)
        response = client.post(reverse("search:api_tokens"), {"name": "bot"})
        assert response.status_code == 200
        assert PIN_COOKIE not in response.cookies

    def test_settings_add_replicas(self) -> None:
        """Each URL becomes replica_<n> with a connect timeout, mirrored in tests."""
        entries = replica_settings(
            urls=["postgres://u:p@r1:5432/app", "postgres://u:p@r2/app?connect_timeout=9"],
            conn_max_age=30,
        )
        assert list(entries) == ["replica_0", "replica_1"]
        assert entries["replica_0"]["HOST"] == "r1"
        assert entries["replica_0"]["CONN_MAX_AGE"] == 30
        assert entries["replica_0"]["CONN_HEALTH_CHECKS"] is True
        assert entries["replica_0"]["OPTIONS"]["connect_timeout"] == 2
        assert entries["replica_1"]["OPTIONS"]["connect_timeout"] == 9
        assert entries["replica_0"]["TEST"] == {"MIRROR": "default"}
        assert replica_settings(urls=[], conn_max_age=30) == {}


# -- Reads from the standby -----------------------------------------------------


@with_replica
class TestReplicaReads:
    def test_search_runs_on_the_standby(self, replica: Standby, reader: Client) -> None:
        """A search's SQL is served by the standby; the primary only logs it."""
        vacation = make_document("Vacation policy", "Employees receive twenty vacation days.")
        replica.wait_until_replayed()
        with (
            CaptureQueriesContext(connections[REPLICA]) as on_replica,
            CaptureQueriesContext(connection) as on_primary,
        ):
            response = reader.get(reverse("search:search"), {"q": "vacation", "mode": "keyword"})
        assert response.status_code == 200
        assert response.context["page"].items[0].document.pk == vacation.pk
        assert any("FROM kw" in sql for sql in _sql(on_replica))
        assert [sql for sql in _sql(on_primary) if _reads_documents(sql)] == []
        assert any("search_searchquerylog" in sql for sql in _sql(on_primary))
        with connections[REPLICA].cursor() as cursor:
            cursor.execute("SELECT pg_is_in_recovery()")
            assert cursor.fetchone() == (True,)

    def test_document_page_and_api_read_from_the_standby(
        self, replica: Standby, reader: Client
    ) -> None:
        """The document page, its related documents and the API's GETs use the standby."""
        first = make_document("Expense reports", "Submit expense reports with receipts.")
        make_document("Expense limits", "Expense reports above the limit need approval.")
        replica.wait_until_replayed()
        for url in (
            reverse("search:document", args=[first.pk]),
            reverse("search:api_document", args=[first.pk]),
            reverse("search:api_related", args=[first.pk]),
            reverse("search:api_search") + "?q=expense&mode=keyword",
        ):
            with (
                CaptureQueriesContext(connections[REPLICA]) as on_replica,
                CaptureQueriesContext(connection) as on_primary,
            ):
                response = reader.get(url)
            assert response.status_code == 200, url
            assert any(_reads_documents(sql) for sql in _sql(on_replica)), url
            assert [sql for sql in _sql(on_primary) if _reads_documents(sql)] == [], url

    def test_other_requests_read_from_the_primary(
        self, replica: Standby, client: Client, admin_user: User
    ) -> None:
        """The admin, the tokens page and code outside requests never read a replica."""
        make_document("Vacation policy", "Employees receive twenty vacation days.")
        client.force_login(admin_user)
        with CaptureQueriesContext(connections[REPLICA]) as on_replica:
            assert client.get(reverse("admin:documents_document_changelist")).status_code == 200
            assert client.get(reverse("search:api_tokens")).status_code == 200
            assert router.db_for_read(Document) == "default"
            assert Document.objects.count() == 1
        assert _sql(on_replica) == []

    def test_celery_tasks_read_from_the_primary(self, replica: Standby) -> None:
        """A task run inside a replica-reading request (eager Celery) reads the primary."""
        with replica_reads():
            assert _read_alias.apply().get() == "default"
            assert read_connection().alias == REPLICA

    def test_one_replica_per_request(self, replica: Standby) -> None:
        """A replica-reading request reads its replica apps' models from one replica."""
        with replica_reads():
            assert router.db_for_read(Document) == REPLICA
            assert read_connection() is connections[REPLICA]
            assert router.db_for_read(User) == "default"  # Not a replica app.
        assert replicas.status()[REPLICA].lag <= 10


@pytest.fixture(scope="class")
def more_replicas(replica_alias: str, standby: Standby) -> Iterator[list[str]]:
    """replica_1 (the standby again) and replica_2 (no server at all)."""
    name = connection.settings_dict["NAME"]
    _add_alias("replica_1", standby.connection_url(dbname=name))
    _add_alias("replica_2", f"postgres://postgres@%2Fnonexistent:5432/{name}")
    yield ["replica_1", "replica_2"]
    _forget_alias("replica_1")
    _forget_alias("replica_2")


@pytest.mark.django_db(transaction=True, databases=["default", REPLICA, "replica_1", "replica_2"])
class TestRoundRobin:
    def test_requests_take_turns_and_skip_a_dead_replica(
        self, more_replicas: list[str], replica: Standby
    ) -> None:
        """Requests go round robin; one that refuses connections loses its turns."""
        assert _turns(6) == [REPLICA, "replica_1", REPLICA, REPLICA, "replica_1", REPLICA]
        assert replicas.status()["replica_2"].down is True
        assert replicas.status()["replica_1"].down is False


# -- Writes -----------------------------------------------------------------------


@with_replica
class TestWrites:
    def test_the_standby_refuses_writes(self, replica: Standby) -> None:
        """A write sent to the standby fails: it is a read-only transaction."""
        with pytest.raises(DatabaseError, match="read-only transaction") as error:
            Document.objects.using(REPLICA).create(title="x", text="y")
        assert isinstance(error.value.__cause__, psycopg.errors.ReadOnlySqlTransaction)

    def test_orm_writes_go_to_the_primary(self, replica: Standby) -> None:
        """Inside a replica-reading request, saves still go to the primary."""
        document = make_document("Draft", "First words.")
        replica.wait_until_replayed()
        with replica_reads():
            loaded = Document.objects.get(pk=document.pk)
            assert loaded._state.db == REPLICA
            loaded.title = "Final"
            loaded.save(update_fields=["title"])
            assert router.db_for_write(Document, instance=loaded) == "default"
        assert Document.objects.using("default").get(pk=document.pk).title == "Final"

    def test_migrations_only_on_the_primary(self, replica: Standby) -> None:
        assert router.allow_migrate(REPLICA, "documents") is False
        assert router.allow_migrate("default", "documents") is True


# -- Read-your-writes -------------------------------------------------------------


@with_replica
class TestReadYourWrites:
    def test_a_writer_reads_the_primary_until_the_pin_expires(
        self,
        paused: Standby,
        reader: Client,
        staff: User,
        settings: SettingsWrapper,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """After a POST the user sees the primary's rows; once the pin expires, the standby's."""
        settings.DATABASE_REPLICA_MAX_LAG = math.inf  # Paused replay must not skip it.
        document = make_document("Fresh memo", "Written a moment ago.")
        page = reverse("search:document", args=[document.pk])
        other = Client()
        other.force_login(staff)
        assert other.get(page).status_code == 404  # Not replayed on the standby.

        response = reader.post(reverse("search:api_tokens"), {"name": "bot"})
        assert response.status_code == 200
        assert response.cookies[PIN_COOKIE]["max-age"] == 5
        assert reader.get(page).status_code == 200

        later = time.time() + 6
        monkeypatch.setattr(signing, "time", SimpleNamespace(time=lambda: later))
        assert reader.get(page).status_code == 404

        paused.resume_replay()
        paused.wait_until_replayed()
        assert other.get(page).status_code == 200


# -- Lag and failures -------------------------------------------------------------


@with_replica
class TestSkippedReplicas:
    def test_a_lagging_standby_is_skipped(
        self, paused: Standby, reader: Client, settings: SettingsWrapper
    ) -> None:
        """A standby further behind than DATABASE_REPLICA_MAX_LAG is not read from."""
        settings.DATABASE_REPLICA_MAX_LAG = 1
        document = make_document("Fresh memo", "Written a moment ago.")
        paused.wait_until_received()
        time.sleep(1.2)
        with CaptureQueriesContext(connections[REPLICA]) as on_replica:
            response = reader.get(reverse("search:document", args=[document.pk]))
        assert response.status_code == 200
        assert [sql for sql in _sql(on_replica) if _reads_documents(sql)] == []
        assert replicas.status()[REPLICA].lag > 1

        paused.resume_replay()
        paused.wait_until_replayed()
        replicas.reset()
        with replica_reads():
            assert router.db_for_read(Document) == REPLICA

    def test_a_stopped_standby_is_skipped(self, replica: Standby, reader: Client) -> None:
        """With the standby down, search still answers from the primary (last: stops it)."""
        vacation = make_document("Vacation policy", "Employees receive twenty vacation days.")
        replica.stop()
        started = time.monotonic()
        response = reader.get(reverse("search:search"), {"q": "vacation", "mode": "hybrid"})
        assert response.status_code == 200
        assert response.context["page"].items[0].document.pk == vacation.pk
        health = replicas.status()[REPLICA]
        assert health.down is True
        assert time.monotonic() - started < 5

        again = reader.get(reverse("search:api_search"), {"q": "vacation"})
        assert again.status_code == 200
        assert again.json()["results"][0]["id"] == vacation.pk
        assert replicas.status()[REPLICA] == health  # Not tried again so soon.
