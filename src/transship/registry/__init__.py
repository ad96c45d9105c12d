"""OCI semantics over storage and metadata: push, pull, tag, delete, uploads, referrers, GC."""
