"""Following an import operation without polling it: `GET /transship/v1/subscriptions/{sub}/
importOperations/{operation}`, a long poll (a Transship extension; the ARM operation URLs
that az polls keep their own contract).

The answer is the operation's status, the same body as its ARM `operationStatuses` URL,
with an `ETag` naming that version of it. A follower sends the ETag it has in
`If-None-Match` and `waitSeconds=N`: the server answers as soon as the operation differs
(200, the new version), or after N seconds without a change (304, nothing new). Without
`waitSeconds` the answer is immediate: 200, or 304 when the version is the one named. An
operation that has ended never changes again, so it is answered at once as well.

Waits are bounded (`RunnerSettings.max_follow_seconds`), hold no database connection while
idle (the wait is on the process's JobSignals, with a re-read every
`follow_poll_seconds` for jobs another process runs), and end at once when the server
shuts down.
"""

from __future__ import annotations

import math

from aiohttp import web

# The operation lookup and its authorization, and the status body, are the ARM status
# route's own: both routes must find, refuse and describe an operation identically.
from transship.api.arm import _job_and_registry, _operation, arm_json
from transship.errors import Invalid
from transship.imports.service import job_version

WAIT_PARAMETER = "waitSeconds"


def wait_seconds(request: web.Request, bound: float) -> float:
    """The wait the follower asked for: 0 when absent. Raises Invalid (field waitSeconds)
    unless it is a number from 0 to `bound`."""
    text = request.query.get(WAIT_PARAMETER)
    if text is None:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= bound:  # NaN and infinities fail here too
        raise Invalid(
            WAIT_PARAMETER,
            f"{WAIT_PARAMETER} must be a number of seconds from 0 to {bound:g}, not {text!r}.",
        )
    return value


def seen_version(request: web.Request) -> str | None:
    """The version named by `If-None-Match` (the first, when several are), or None."""
    named = request.if_none_match
    if not named:
        return None
    return named[0].value


async def follow_operation(request: web.Request) -> web.Response:
    services, job, registry = await _job_and_registry(request)
    imports = services.imports
    wait = wait_seconds(request, imports.settings.max_follow_seconds)
    seen = seen_version(request)
    if seen is not None and seen == job_version(job) and wait > 0:
        followed = await imports.follow(job.id, seen, wait)
        if followed is None:  # deleted with its registry meanwhile: as the lookup answers
            services, job, registry = await _job_and_registry(request)
        else:
            job = followed
    version = job_version(job)
    headers = {"ETag": f'"{version}"', "Cache-Control": "no-store"}
    if seen == version:
        return web.Response(status=304, headers=headers)
    body = await _operation(services, job, registry, request.match_info["sub"])
    return arm_json(body, headers=headers)
