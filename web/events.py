"""End-of-job messages for the web: one pub/sub subscription a web process, shared by every ?wait=.

A fresh subscription for each long-poll costs a new Redis connection (redis-py closes a
pub/sub connection instead of returning it to the pool) and its handshake. Here one
thread a process holds a pattern subscription to every job's end-of-job channel and wakes
the requests waiting on that job. Waiters still re-read the job every second, so a message
lost while the subscription reconnects delays an answer by at most that second.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.client import PubSub

from imgjobs.jobs import event_channel

log = logging.getLogger(__name__)
PREFIX = event_channel("")


class Listener:
    """One pattern subscription to all end-of-job channels, waking the requests that wait on a job."""

    def __init__(self, client: redis.Redis, timeout: float) -> None:
        self.client = client
        self.timeout = timeout  # how long the first waiter of a process waits for Redis to confirm the subscription
        self.lock = threading.Lock()
        self.waiting: dict[str, list[threading.Event]] = {}
        self.thread: threading.Thread | None = None
        self.pid = 0

    @contextmanager
    def waiter(self, job_id: str) -> Iterator[threading.Event]:
        """Yield an event set when the job's end-of-job message arrives; the subscription is live before."""
        event = threading.Event()
        with self.lock:
            self._ensure()
            self.waiting.setdefault(job_id, []).append(event)
        try:
            yield event
        finally:
            with self.lock:
                events = self.waiting[job_id]
                events.remove(event)
                if not events:
                    del self.waiting[job_id]

    def wake(self, channel: str) -> None:
        """Set the events of everyone waiting on the job this channel names."""
        with self.lock:
            for event in self.waiting.get(channel.removeprefix(PREFIX), ()):
                event.set()

    def listening(self) -> bool:
        """Tell whether this process's listening thread runs."""
        return self.pid == os.getpid() and self.thread is not None and self.thread.is_alive()

    def _ensure(self) -> None:
        """Start this process's listening thread once subscribed (after a fork, or after it died), under the lock."""
        if self.listening():
            return
        pubsub = self.client.pubsub()
        try:
            pubsub.psubscribe(PREFIX + "*")
            _confirmed(pubsub, self.timeout)
        except BaseException:
            pubsub.close()
            raise
        self.pid = os.getpid()
        self.thread = threading.Thread(target=_listen, args=(weakref.ref(self), pubsub), daemon=True,
                                       name="imgjobs-events")
        self.thread.start()


def _confirmed(pubsub: PubSub, timeout: float) -> None:
    """Wait up to `timeout` seconds for Redis to confirm the subscription, so no message sent after is missed."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        message = pubsub.get_message(timeout=left)
        if message and message["type"] == "psubscribe":
            return
    raise redis.TimeoutError("Redis did not confirm the end-of-job subscription")


def _listen(owner: weakref.ref[Listener], pubsub: PubSub) -> None:
    """Pass end-of-job messages to the listener until it is gone or Redis fails (the next waiter starts anew)."""
    try:
        while owner() is not None:
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            listener = owner()
            if message and listener is not None and message["type"] == "pmessage":
                listener.wake(message["channel"].decode())
            del listener
    except Exception as exc:  # Redis failed, or the app closed its pool under the thread: waiters poll meanwhile
        log.warning("end-of-job subscription lost, the next long-poll subscribes again: %r", exc)
    finally:
        pubsub.close()
