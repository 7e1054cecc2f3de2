from __future__ import annotations

from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "documents"

    def ready(self) -> None:
        import psycopg
        from pgvector import Vector
        from pgvector.psycopg.vector import VectorDumper

        # Raw SQL passes embeddings as pgvector.Vector parameters, sent by
        # pgvector's own text dumper; the statements cast them (::vector(d)).
        # Registered globally: Django opens its connections itself.
        psycopg.adapters.register_dumper(Vector, VectorDumper)
