"""Prometheus metrics at /metrics, read from Redis at scrape time (so any number of gunicorn processes agree)."""

from __future__ import annotations

import hmac
from collections.abc import Iterator

import redis
from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from rq import Queue, Worker
from rq.serializers import JSONSerializer
from rq.utils import now

from imgjobs.jobs import queue_names
from web import auth, store, usage

bp = Blueprint("metrics", __name__)
OLDEST_SCAN = 10  # ids looked at from the head of a queue for one whose job still exists


class QueueCollector:
    """Jobs by state, workers by state, queue depth and wait per queue, and whether Redis answers."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        """Read the queue's registries and the worker list."""
        up = GaugeMetricFamily("imgjobs_redis_up", "1 when Redis answers the web process, else 0")
        with self.app.app_context():
            try:
                jobs, workers, queues, per_key, memory = (
                    self._jobs(), self._workers(), self._queues(), self._usage(), self._memory()
                )
            except redis.RedisError:
                up.add_metric([], 0)
                yield up
                return
        up.add_metric([], 1)
        yield up
        yield jobs
        yield workers
        yield from queues
        yield from per_key
        yield from memory

    def _jobs(self) -> GaugeMetricFamily:
        """Count jobs in each RQ registry of the queue (the started one without its cleanup: the reaper does that)."""
        queue = store.queue()
        family = GaugeMetricFamily("imgjobs_jobs", "Jobs known to the queue, by RQ state", labels=["state"])
        counts = {
            "queued": queue.count,
            "scheduled": queue.scheduled_job_registry.count,
            "started": queue.started_job_registry.get_job_count(cleanup=False),
            "finished": queue.finished_job_registry.count,
            "failed": queue.failed_job_registry.count,
            "canceled": queue.canceled_job_registry.count,
        }
        for state, count in counts.items():
            family.add_metric([state], count)
        return family

    def _memory(self) -> list[GaugeMetricFamily]:
        """Report Redis' memory use against its limit: at the limit, with noeviction, new jobs are refused."""
        info = store.connection().info("memory")
        used = GaugeMetricFamily("imgjobs_redis_memory_used_bytes", "Memory Redis uses")
        used.add_metric([], info["used_memory"])
        limit = GaugeMetricFamily("imgjobs_redis_maxmemory_bytes", "Redis' maxmemory (0: no limit)")
        limit.add_metric([], info.get("maxmemory", 0))
        return [used, limit]

    def _queues(self) -> list[GaugeMetricFamily]:
        """Measure what autoscaling watches: each queue's length and how long its head has waited."""
        depth = GaugeMetricFamily("imgjobs_queue_depth", "Jobs waiting in the queue", labels=["queue"])
        age = GaugeMetricFamily(
            "imgjobs_queue_oldest_age_seconds", "Seconds the oldest waiting job has waited", labels=["queue"]
        )
        for name in queue_names(self.app.config):
            queue = Queue(name, connection=store.connection(), serializer=JSONSerializer)
            depth.add_metric([name], queue.count)
            age.add_metric([name], _oldest_wait(queue))
        return [depth, age]

    def _workers(self) -> GaugeMetricFamily:
        """Count registered workers by what they are doing."""
        family = GaugeMetricFamily("imgjobs_workers", "Live RQ workers on the queue, by state", labels=["state"])
        states: dict[str, int] = {"idle": 0, "busy": 0}
        for worker in Worker.all(queue=store.queue()):
            state = str(worker.get_state())
            states[state] = states.get(state, 0) + 1
        for state, count in states.items():
            family.add_metric([state], count)
        return family

    def _usage(self) -> list[CounterMetricFamily]:
        """Count jobs created and calls refused, by API key name."""
        jobs = CounterMetricFamily("imgjobs_key_jobs", "Jobs created, by API key name", labels=["key"])
        for name, count in sorted(usage.jobs().items()):
            jobs.add_metric([name], count)
        refused = CounterMetricFamily(
            "imgjobs_key_rejections", "Calls refused, by API key name and reason", labels=["key", "reason"]
        )
        for (name, reason), count in sorted(usage.rejections().items()):
            refused.add_metric([name, reason], count)
        return [jobs, refused]


def _oldest_wait(queue: Queue) -> float:
    """Return how long the job at the head of `queue` has waited; skip ids whose job is gone."""
    for job_id in queue.get_job_ids(0, OLDEST_SCAN - 1):
        job = queue.fetch_job(job_id)
        if job is not None and job.enqueued_at is not None:
            return max(0.0, (now() - job.enqueued_at).total_seconds())
    return 0.0


def init_app(app: Flask) -> None:
    """Give the app its own metrics registry and the /metrics route."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(app))
    app.extensions["metrics"] = registry
    app.register_blueprint(bp)


@bp.get("/metrics")
def metrics() -> Response:
    """Serve the metrics in Prometheus' text format, to holders of METRICS_TOKEN when it is set."""
    token = current_app.config["METRICS_TOKEN"]
    if token and not hmac.compare_digest(auth.bearer().encode(), token.encode()):
        return auth.unauthorized("invalid_key" if auth.bearer() else "missing_key")
    return Response(generate_latest(current_app.extensions["metrics"]), mimetype=CONTENT_TYPE_LATEST)
