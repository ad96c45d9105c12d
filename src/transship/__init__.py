"""Transship: a self-hosted OCI registry with server-side image import."""

__version__ = "0.1.0"
