"""Half-precision HNSW (cosine) indexes on chunk embeddings.

``SEARCH_VECTOR_TYPE=halfvec`` makes semantic search cast to ``halfvec(d)``,
which these partial expression indexes serve, one per supported size as in
0002 (same predicate, same build parameters). A halfvec index is about half
the size of its ``vector`` twin (2 bytes a dimension instead of 4), so more
of it stays in memory as the collection grows. The cost: every chunk insert
also maintains this second graph (an HNSW insert is a graph search of
``ef_construction`` candidates), and a bulk build takes about as long again
as the vector index's; ``bench_search`` reports both build times and sizes.
See https://github.com/pgvector/pgvector#half-precision-indexing
"""

from django.db import migrations

#: The sizes of 0002's indexes.
DIMENSIONS = (384, 512, 1536)


def _index_sql(dims: int) -> tuple[str, str]:
    name = f"documents_chunk_embedding_{dims}_halfvec_hnsw"
    create = (
        f"CREATE INDEX IF NOT EXISTS {name} ON documents_chunk USING hnsw "
        f"((embedding::halfvec({dims})) halfvec_cosine_ops) "
        f"WITH (m = 16, ef_construction = 64) "
        f"WHERE vector_dims(embedding) = {dims}"
    )
    return create, f"DROP INDEX IF EXISTS {name}"


class Migration(migrations.Migration):
    dependencies = [("documents", "0006_staged_index")]

    operations = [migrations.RunSQL(*_index_sql(dims)) for dims in DIMENSIONS]
