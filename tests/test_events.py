"""web.events: one end-of-job subscription a web process, shared by every long-poll."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from imgjobs.jobs import event_channel
from tests.conftest import wait_until
from tests.services import RedisServer
from web.events import Listener


@pytest.fixture
def listener(redis_server: RedisServer) -> Iterator[Listener]:
    client = redis.Redis.from_url(redis_server.url)
    yield Listener(client, 5.0)
    client.close()


def pattern_subscribers(redis_client: redis.Redis) -> int:
    """Return how many Redis clients hold pattern subscriptions."""
    return sum(1 for c in redis_client.client_list() if int(c["psub"]))


def test_a_message_wakes_only_the_waiters_of_its_job(listener, redis_client):
    with listener.waiter("a" * 32) as mine, listener.waiter("b" * 32) as other:
        redis_client.publish(event_channel("a" * 32), "finished")
        assert mine.wait(10)
        assert not other.is_set()
    assert listener.waiting == {}


def test_waiters_share_one_subscription(listener, redis_client):
    before = pattern_subscribers(redis_client)
    threads = set()
    for number in range(3):
        with listener.waiter(f"{number:032x}"):
            threads.add(listener.thread)
    assert len(threads) == 1 and listener.listening()
    assert pattern_subscribers(redis_client) == before + 1


def test_a_lost_subscription_is_made_again_by_the_next_waiter(listener, redis_client):
    with listener.waiter("c" * 32):
        pass
    first = listener.thread
    redis_client.client_kill_filter(_type="pubsub")
    wait_until(lambda: not listener.listening(), timeout=10, what="the listening thread to notice")
    with listener.waiter("d" * 32) as event:
        assert listener.listening() and listener.thread is not first
        redis_client.publish(event_channel("d" * 32), "finished")
        assert event.wait(10)
