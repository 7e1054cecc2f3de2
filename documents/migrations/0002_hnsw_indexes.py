"""HNSW (cosine) indexes on chunk and document embeddings.

The embedding columns have no fixed size, so that chunks of two models (of
different sizes) can coexist while a collection is re-embedded. pgvector
indexes such columns through an expression cast to a fixed size, one partial
index per supported size; queries use the same cast and predicate. See
https://github.com/pgvector/pgvector#can-i-store-vectors-with-different-dimensions-in-the-same-column
"""

from django.db import migrations

#: all-MiniLM-L6-v2 and other MiniLM/bge-small models (384), USE multilingual
#: (512), text-embedding-3-small / ada-002 (1536).
DIMENSIONS = (384, 512, 1536)


def _index_sql(table: str, dims: int) -> tuple[str, str]:
    name = f"{table}_embedding_{dims}_hnsw"
    create = (
        f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING hnsw "
        f"((embedding::vector({dims})) vector_cosine_ops) "
        f"WITH (m = 16, ef_construction = 64) "
        f"WHERE vector_dims(embedding) = {dims}"
    )
    return create, f"DROP INDEX IF EXISTS {name}"


class Migration(migrations.Migration):
    dependencies = [("documents", "0001_initial")]

    operations = [
        migrations.RunSQL(*_index_sql(table, dims))
        for table in ("documents_chunk", "documents_document")
        for dims in DIMENSIONS
    ]
