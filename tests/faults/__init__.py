"""Faults against the real database, broker and worker (issue 6).

1. The embedding provider fails halfway through a batch, or is down: documents
   stay saved, their status shows the failure, attempts back off, and they
   become ready once the provider is back; a document's chunks are always the
   complete old set or the complete new one.
2. A worker killed (SIGKILL) in the middle of a task: the unacknowledged task
   is delivered again to another worker, and the document ends ready with one
   set of chunks.
3. A document edited twice quickly, or while its embedding runs: the final
   chunks are those of the final text, never a mix.
4. The database server restarted during an import: the import says what
   failed, a rerun completes it, nothing is lost or duplicated.
"""
