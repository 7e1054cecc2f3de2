"""Rebuild the chunk HNSW indexes (vector and halfvec) with ef_construction 200.

``bench_search --sizes 100000,300000`` measured HNSW recall@10 against an
exact scan: with 0002's and 0007's ef_construction of 64 it fell from 0.970
at 100k chunks to 0.861 at 300k (0.920 with ``hnsw.ef_search`` doubled to
400, so a wider search cannot make up for the graph); built with 200 the
300k index kept 0.967 at the same ef_search of 200. The price is build
time (62 s against 280 s for 300k chunks on two cores) and a costlier
insert (each is a graph search of ``ef_construction`` candidates), small
beside embedding a chunk. Same names, predicates and ``m`` as before.
See https://github.com/pgvector/pgvector#index-options
"""

from django.db import migrations

#: The sizes of 0002's and 0007's indexes.
DIMENSIONS = (384, 512, 1536)
CASTS = ("vector", "halfvec")


def _create(cast: str, dims: int, ef_construction: int) -> str:
    suffix = "" if cast == "vector" else "_halfvec"
    name = f"documents_chunk_embedding_{dims}{suffix}_hnsw"
    return (
        f"DROP INDEX IF EXISTS {name}; "
        f"CREATE INDEX {name} ON documents_chunk USING hnsw "
        f"((embedding::{cast}({dims})) {cast}_cosine_ops) "
        f"WITH (m = 16, ef_construction = {ef_construction}) "
        f"WHERE vector_dims(embedding) = {dims}"
    )


class Migration(migrations.Migration):
    dependencies = [("documents", "0007_halfvec_hnsw_indexes")]

    operations = [
        migrations.RunSQL(_create(cast, dims, 200), _create(cast, dims, 64))
        for cast in CASTS
        for dims in DIMENSIONS
    ]
