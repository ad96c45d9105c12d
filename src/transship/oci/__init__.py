"""Pure OCI values: digests, references, media types, manifest parsing. No I/O here."""
