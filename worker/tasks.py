"""The RQ entry point the web enqueues by name: `worker.tasks.process`."""

from __future__ import annotations

from typing import Any

from rq import get_current_job

from imgjobs import config, storage
from imgjobs.catalog import Budget
from imgjobs.jobs import stop_key
from worker import pipeline
from worker.failures import JobCanceled


def process(job_spec: dict[str, Any]) -> dict[str, Any]:
    """Run the current job's steps on its upload and store the result."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("process() runs inside an RQ job")
    settings = config.from_env()
    store = storage.from_config(settings)
    budget = Budget(settings["MAX_PIXELS"], settings["MAX_DIMENSION"])

    def progress(fraction: float) -> None:
        """Record the progress, and stop here if the job was canceled meanwhile (one round trip to Redis)."""
        with job.connection.pipeline(transaction=False) as batch:
            batch.exists(stop_key(job.id))
            if fraction:
                job.meta["progress"] = round(fraction, 4)
                batch.hset(job.key, "meta", job.serializer.dumps(job.meta))  # job.save_meta(), batched
            if batch.execute()[0]:
                raise JobCanceled(job.id)

    progress(0.0)  # canceled while it waited to start
    with store.fetch_upload(job.id) as source, store.store_result(job.id, job_spec["format"]) as result:
        return pipeline.process(source, result, job_spec, progress, budget)
