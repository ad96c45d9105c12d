"""One import as the CLI follows it, timed from inside the client (run by `import_latency` as a
subprocess, so it runs this checkout's `transship.cli`, from ``src/`` on PYTHONPATH).

    python bench/import_latency_client.py follow|poll   < request.json   > answer.json

The request names the server, the owner service principal's credential, the target
registry, the source registry's resource id, the source image and the target tag. The
client POSTs importImage with `ManagementApi` and then:

- ``follow``: `commands_import.wait`, what `transship import` does now (the long poll);
- ``poll``: `commands_import.poll`, the status-URL poll the CLI used before (every
  Retry-After, which the server sets to 1 s), kept as its fallback.

It prints when it returned (epoch seconds, the server's clock: same machine), the
operation's end time and status, and how many HTTP requests it sent after the POST.
"""

from __future__ import annotations

import io
import json
import sys
import time
from typing import Any

from rich.console import Console

from transship.cli import commands_import
from transship.cli.client import ManagementApi, Response, unchecked
from transship.cli.profile import Profile
from transship.cli.progress import ImportProgress
from transship.wire.arm import OperationStatus
from transship.wire.bodies import ImportImageParameters, ImportSource


def main(mode: str, request: dict[str, Any]) -> dict[str, Any]:
    api = ManagementApi(Profile(request["server"], request["clientId"], request["secret"]))
    api.info  # noqa: B018 -- the service's coordinates (and a token) before the clock starts
    sent = [0]
    inner = api.http.request

    def counted(*args: Any, **kwargs: Any) -> Response:
        sent[0] += 1
        return inner(*args, **kwargs)

    api.http.request = counted  # type: ignore[method-assign]
    source = unchecked(ImportSource, resource_id=request["sourceId"], source_image=request["image"])
    parameters = unchecked(
        ImportImageParameters, source=source, target_tags=[request["tag"]], mode="NoForce"
    )
    posted = time.time()
    accepted = api.import_image(request["registry"], parameters)
    after_post = sent[0]
    operation = OperationStatus.model_validate_json(accepted.body) if accepted.body else None
    progress = ImportProgress(Console(file=io.StringIO()), request["image"], live=False)
    with progress:
        if mode == "follow":
            outcome = commands_import.wait(api, accepted, operation, progress)
        else:
            outcome = commands_import.poll(
                api,
                accepted,
                accepted.header("Azure-AsyncOperation"),
                accepted.header("Location"),
                operation,
                progress,
            )
    returned = time.time()
    final = outcome.operation
    assert final is not None
    return {
        "posted": posted,
        "returned": returned,
        "status": outcome.status,
        "startTime": final.start_time,
        "endTime": final.end_time,
        "requests": sent[0] - after_post,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], json.load(sys.stdin))))
