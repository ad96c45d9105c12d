"""Bytes only: a content-addressed blob store and upload staging. Knows no repositories."""
