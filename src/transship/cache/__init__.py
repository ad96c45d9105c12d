"""Artifact cache (pull-through under cache rules) and scheduled sync, both built on the
import engine."""
