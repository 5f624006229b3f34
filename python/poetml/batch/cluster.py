"""The Dask client of a batch run: a given one, a running scheduler, or a LocalCluster."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["open_client"]


@contextlib.contextmanager
def open_client(
    client: Any,
    scheduler: str | None,
    workers: int | None,
    threads_per_worker: int,
    retries: int,
    memory_limit: str | None,
) -> Iterator[Any]:
    from .._optional import require

    distributed = require("distributed", "batch processing")
    if client is not None:
        yield client
        return
    if scheduler:
        with distributed.Client(scheduler, set_as_default=False) as c:
            yield c
        return
    import dask

    n = workers or max(1, (os.cpu_count() or 1) // max(1, threads_per_worker))
    # a worker that dies while running a task makes the scheduler resubmit it elsewhere,
    # up to allowed-failures times before giving up with KilledWorker
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": retries}),
        distributed.LocalCluster(
            n_workers=n,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=":0",  # any free port (a busy 8787 only warns)
            memory_limit=memory_limit or "auto",
            silence_logs=logging.CRITICAL,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as c,
    ):
        yield c
