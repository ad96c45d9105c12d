"""Launchers and helpers for the real peers Transship's tests run against.

Every server started from here binds to loopback on a port chosen at run time, and every
process is owned by a context manager (or a pytest fixture) that stops it, process group and
all. Modules:

- :mod:`tests.peers.ports`        free loopback ports, waiting for HTTP readiness
- :mod:`tests.peers.procs`        a managed subprocess in its own process group
- :mod:`tests.peers.distribution` Debian's ``docker-registry`` (anonymous, htpasswd, token)
- :mod:`tests.peers.token_server` a Docker-Hub-style token server (RS256 JWTs)
- :mod:`tests.peers.postgres`     a throwaway PostgreSQL cluster
- :mod:`tests.peers.images`       deterministic OCI layouts, multi-arch indexes, foreign layers
- :mod:`tests.peers.oci_http`     a tiny OCI distribution HTTP client (push/pull, auth challenges)
- :mod:`tests.peers.clients`      skopeo, podman and docker CLI wrappers
- :mod:`tests.peers.transship`    our own server as a subprocess
- :mod:`tests.peers.fault_proxy`  a TCP proxy that injects latency, caps, resets and stalls
- :mod:`tests.peers.browser`      headless Chromium via selenium + chromedriver, axe-core checks
"""
