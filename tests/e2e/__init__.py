"""End-to-end tests: real clients (skopeo, podman, docker CLI, oras) against a Transship process."""
