"""Load test: gunicorn serving the demo corpus while locust users search.

Runs under ``make stress`` only. Everything happens on loopback, in a
database of its own (``docsearch_stress`` on the embedded server), so the
users' database is never touched:

1. migrate, create the ``loadtest`` login, import ``documents/demo_corpus``
   with the configured embedder (``EMBEDDING_PROVIDER``, a real model by
   default);
2. start gunicorn (2 workers x 4 threads) with the search and login rate
   limits off (``SEARCH_RATE_LIMIT=0`` and friends; otherwise a load test
   measures the limiter);
3. time the search mix sequentially from one logged-in client (no load);
4. run locust headless for a minute: 20 users sign in once, then alternate
   hybrid searches on the page and the JSON API.

The numbers go to ``test-artifacts/load.json``, also when the test fails
(then what was measured until it stopped); ``make stress`` prints them as a
table at the end (``conftest.py``).
"""

from __future__ import annotations

import ast
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest
import requests

from tests.stress.artifacts import LOAD, percentile, stopped_by, write_figures

if TYPE_CHECKING:
    from collections.abc import Mapping

pytestmark = pytest.mark.stress

ROOT: Final = Path(__file__).resolve().parents[2]
BIN: Final = Path(sys.executable).parent
LOCUSTFILE: Final = Path(__file__).with_name("locustfile.py")
DATABASE: Final = "docsearch_stress"
USERNAME: Final = "loadtest"
PASSWORD: Final = "load-test-password-2026"
USERS: Final = 20
SPAWN_RATE: Final = 5
DURATION_S: Final = 60
BASELINE_REQUESTS: Final = 100
WARM_UP_REQUESTS: Final = 10
#: A first run imports and embeds the corpus (about half a minute on an idle
#: machine, a few minutes on a busy 2-core one); later runs find every file
#: unchanged and take seconds.
PREPARE_BUDGET_S: Final = 240
#: Starting the server, the sequential baseline and the locust run.
MEASURE_BUDGET_S: Final = 150

CREATE_USER: Final = f"""
from django.contrib.auth.models import User
user, _ = User.objects.get_or_create(username={USERNAME!r}, defaults={{"is_staff": True}})
user.set_password({PASSWORD!r})
user.save()
"""
COUNT_DOCUMENTS: Final = """
import json
from django.conf import settings
from documents.models import Chunk, Document
print(json.dumps({"total": Document.objects.count(),
                  "ready": Document.objects.filter(status=Document.Status.READY).count(),
                  "provider": settings.EMBEDDING_PROVIDER,
                  "models": sorted(set(Chunk.objects.values_list("embedding_model", flat=True)))}))
"""


def search_queries() -> list[str]:
    """The locustfile's ``QUERIES``, read without importing it.

    Importing locust monkey-patches the whole process with gevent.
    """
    tree = ast.parse(LOCUSTFILE.read_text(encoding="utf-8"))
    for node in tree.body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "QUERIES"
            and node.value is not None
        ):
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"No QUERIES list in {LOCUSTFILE}")


class Deadline:
    """Seconds left of the test's budget, for each subprocess's timeout."""

    def __init__(self, seconds: float, *, what: str) -> None:
        self.seconds, self.what = seconds, what
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            pytest.fail(f"{self.what} took more than {self.seconds} s")
        return left


def server_env() -> dict[str, str]:
    """Production settings on the stress database, rate limits off, no network."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CACHE_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_NAME=DATABASE,
        DJANGO_DEBUG="0",
        DJANGO_SECURE="0",
        CELERY_BROKER_URL="",  # Index eagerly, inside import_documents.
        SEARCH_RATE_LIMIT="0",
        LOGIN_RATE_LIMIT="0",
        LOGIN_USERNAME_RATE_LIMIT="0",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        NO_PROXY="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
    )
    return env


def manage(*args: str, env: dict[str, str], deadline: Deadline) -> str:
    result = subprocess.run(
        [str(BIN / "python"), "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=deadline.left(),
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"manage.py {args[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )
    return result.stdout


def prepare_database(env: dict[str, str], deadline: Deadline) -> dict[str, Any]:
    """Migrate, create the login and import the demo corpus; return its counts.

    That is the documents (``total``, ``ready``), the configured provider and
    the models its chunks were embedded with.
    """
    manage("migrate", "--noinput", env=env, deadline=deadline)
    manage("shell", "-c", CREATE_USER, env=env, deadline=deadline)
    manage(
        "import_documents",
        str(ROOT / "documents" / "demo_corpus"),
        "--tag",
        "demo",
        "--no-progress",
        env=env,
        deadline=deadline,
    )
    output = manage("shell", "-c", COUNT_DOCUMENTS, env=env, deadline=deadline)
    counts = json.loads(output.strip().splitlines()[-1])  # After the shell's own notice.
    assert counts["total"] >= 30, counts
    assert counts["ready"] == counts["total"], counts
    return dict(counts)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gunicorn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [
        str(BIN / "gunicorn"),
        "config.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--threads",
        "4",
        "--timeout",
        "120",
        "--graceful-timeout",
        "10",
    ]
    with log.open("wb") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop gunicorn gracefully, then its whole process group if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_until_up(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    session = requests.Session()
    session.trust_env = False  # Loopback only: no proxy from the environment.
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if session.get(f"{base}/healthz", timeout=5).status_code == 200:
                return
        except requests.RequestException:  # Not listening yet, or busy loading.
            pass
        time.sleep(0.5)
    pytest.fail(f"gunicorn did not answer within 60 s:\n{log.read_text()[-4000:]}")


def logged_in_session(base: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # Loopback only: no proxy from the environment.
    session.get(f"{base}/accounts/login/", timeout=60).raise_for_status()
    response = session.post(
        f"{base}/accounts/login/",
        data={
            "username": USERNAME,
            "password": PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "next": "/search/",
        },
        timeout=60,
    )
    assert response.status_code == 200 and response.url.endswith("/search/"), response.url
    return session


def sequential_latencies(
    session: requests.Session, base: str, queries: list[str]
) -> list[tuple[str, float]]:
    """Time the search mix one request at a time (after a warm-up): (path, milliseconds)."""
    latencies: list[tuple[str, float]] = []
    for i in range(WARM_UP_REQUESTS + BASELINE_REQUESTS):
        path = "/search/" if i % 2 == 0 else "/api/search"
        params = {"q": queries[i % len(queries)], "mode": "hybrid"}
        # The first searches may wait for each worker to load the model.
        timeout = 120 if i < WARM_UP_REQUESTS else 30
        start = time.perf_counter()
        response = session.get(f"{base}{path}", params=params, timeout=timeout)
        elapsed = (time.perf_counter() - start) * 1000
        assert response.status_code == 200, (response.status_code, response.text[:300])
        if i >= WARM_UP_REQUESTS:
            latencies.append((path, elapsed))
    return latencies


def run_locust(base: str, out: Path, deadline: Deadline) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LOAD_USERNAME": USERNAME,
        "LOAD_PASSWORD": PASSWORD,
        "LOAD_SAMPLES": str(out / "samples.json"),
        "NO_PROXY": "127.0.0.1,localhost",
    }
    command = [
        str(BIN / "locust"),
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "-u",
        str(USERS),
        "-r",
        str(SPAWN_RATE),
        "-t",
        f"{DURATION_S}s",
        "--stop-timeout",
        "5",
        "--host",
        base,
        "--csv",
        str(out / "load"),
        "--only-summary",
    ]
    return subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=min(deadline.left(), DURATION_S + 60),
        check=False,
    )


def locust_rows(out: Path) -> dict[str, dict[str, Any]]:
    with (out / "load_stats.csv").open(encoding="utf-8", newline="") as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    if "Aggregated" not in rows:
        raise KeyError("load_stats.csv has no Aggregated row")
    return rows


def _number(cell: str) -> float | None:
    """A locust CSV cell as a number (its percentiles read "N/A" without requests)."""
    try:
        return float(cell)
    except ValueError:
        return None


def endpoint_figures(
    rows: Mapping[str, Mapping[str, str]], samples: Mapping[str, list[float]]
) -> list[dict[str, Any]]:
    """Per locust request name, then all together: requests, req/s, p50/p95 ms, errors.

    The searches' percentiles are exact (from ``samples``, by endpoint);
    the login's and the total's are locust's, to two significant digits.
    """
    figures: list[dict[str, Any]] = []
    for name, row in rows.items():
        timings = samples.get(name, [])
        exact = len(timings) >= 2
        figures.append(
            {
                "name": "all (locust)" if name == "Aggregated" else name,
                "mode": "hybrid" if name in samples else "-",
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": round(float(row["Requests/s"]), 1),
                "p50_ms": percentile(timings, 50) if exact else _number(row["50%"]),
                "p95_ms": percentile(timings, 95) if exact else _number(row["95%"]),
                "percentiles": "exact" if exact else "locust",
            }
        )
    return figures


def baseline_figures(baseline: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """The sequential searches per path, then both: one client, no other load."""
    groups: dict[str, list[float]] = {}
    for path, ms in baseline:
        groups.setdefault(path, []).append(ms)
    groups["both"] = [ms for _, ms in baseline]
    return [
        {
            "name": name,
            "mode": "hybrid",
            "requests": len(timings),
            "failures": 0,  # sequential_latencies asserts every answer.
            "rps": round(len(timings) / (sum(timings) / 1000), 1) if timings else None,
            "p50_ms": percentile(timings, 50),
            "p95_ms": percentile(timings, 95),
        }
        for name, timings in groups.items()
    ]


def locust_figures(out: Path, result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """What locust measured: per endpoint (see ``endpoint_figures``) and in total."""
    try:
        rows = locust_rows(out)
    except (OSError, KeyError) as exc:
        output = (result.stdout + result.stderr)[-4000:]
        pytest.fail(f"locust (exit {result.returncode}) left no statistics ({exc}):\n{output}")
    samples_file = out / "samples.json"
    by_endpoint: dict[str, list[float]] = (
        json.loads(samples_file.read_text(encoding="utf-8")) if samples_file.exists() else {}
    )
    samples = [ms for timings in by_endpoint.values() for ms in timings]
    total = rows["Aggregated"]
    return {
        "endpoints": endpoint_figures(rows, by_endpoint),
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
        "throughput_rps": round(float(total["Requests/s"]), 1),
        "search_requests": len(samples),
        "search_throughput_rps": round(
            sum(float(rows[name]["Requests/s"]) for name in by_endpoint if name in rows), 1
        ),
        "p50_ms": percentile(samples, 50),
        "p95_ms": percentile(samples, 95),
        "p99_ms": percentile(samples, 99),
    }


def test_hybrid_search_under_load(tmp_path: Path) -> None:
    """Twenty users searching at once get no errors, and the numbers are recorded."""
    env = server_env()
    queries = search_queries()
    numbers: dict[str, Any] = {
        "users": USERS,
        "spawn_rate": SPAWN_RATE,
        "duration_s": DURATION_S,
        "gunicorn": "2 workers x 4 threads",
        "cpu_count": os.cpu_count(),
    }
    phases: dict[str, float] = {"started": time.monotonic()}
    try:
        counts = prepare_database(env, Deadline(PREPARE_BUDGET_S, what="Preparing the database"))
        numbers.update(
            documents=counts["total"],
            embedding_provider=counts["provider"],
            embedding_models=counts["models"],
        )
        phases["prepare"] = time.monotonic()
        result = measure(env, queries, tmp_path, numbers, phases)
        summary = result.stdout + result.stderr
        numbers.update(locust_figures(tmp_path, result))
    except BaseException as exc:
        numbers["stopped_by"] = stopped_by(exc)
        raise
    finally:
        numbers["phase_seconds"] = {
            name: round(end - start, 1) for (_, start), (name, end) in pairwise(phases.items())
        }
        write_figures(LOAD, numbers)
    print(
        f"\n{summary[-3000:]}\n{json.dumps(numbers)}\n"
        f"Under load ({USERS} users): {numbers['throughput_rps']} req/s, "
        f"p50 {numbers['p50_ms']} ms, p95 {numbers['p95_ms']} ms; "
        f"no load: p95 {numbers['no_load_p95_ms']} ms"
    )
    assert numbers["search_requests"] >= 100, summary[-4000:]
    assert numbers["failures"] == 0, f"{numbers['failures']} failed requests:\n{summary[-4000:]}"
    assert result.returncode == 0, summary[-4000:]


def measure(
    env: dict[str, str],
    queries: list[str],
    out: Path,
    numbers: dict[str, Any],
    phases: dict[str, float],
) -> subprocess.CompletedProcess[str]:
    """Serve, time the searches with no load, then run locust; return its run.

    The baseline goes into ``numbers`` and each phase's end into ``phases``
    as soon as it is measured, so a later failure leaves them recorded.
    """
    deadline = Deadline(MEASURE_BUDGET_S, what="Measuring")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = out / "gunicorn.log"
    server = start_gunicorn(env, port, log)
    try:
        wait_until_up(base, server, log)
        phases["server_start"] = time.monotonic()
        # Other work on the machine skews every number; record how busy it was.
        numbers["load_average_before"] = round(os.getloadavg()[0], 2)
        baseline = sequential_latencies(logged_in_session(base), base, queries)
        timings = [ms for _, ms in baseline]
        numbers.update(
            no_load=baseline_figures(baseline),
            no_load_requests=len(timings),
            no_load_p50_ms=percentile(timings, 50),
            no_load_p95_ms=percentile(timings, 95),
        )
        phases["no_load"] = time.monotonic()
        result = run_locust(base, out, deadline)
        phases["locust"] = time.monotonic()
    finally:
        stop(server)
    return result
