"""The render node's bookkeeping thread (jobs.node.bookkeeping): transition
receivers beside the render loop, held while the loop is between two renders."""

from __future__ import annotations

import threading
import time

import pytest

from jobs.node import bookkeeping


@pytest.fixture
def keeper():
    keeper = bookkeeping.start()
    yield keeper
    bookkeeping.stop()


def test_receivers_wait_while_the_node_is_between_two_renders(keeper):
    ran = threading.Event()
    bookkeeping.hold()
    keeper.submit(ran.set)
    assert not ran.wait(0.3)  # held: the node's own work comes first
    bookkeeping.go()
    assert ran.wait(2)


def test_a_hold_that_is_never_released_delays_the_queue_once_not_item_by_item(keeper):
    done = []
    bookkeeping.hold()
    held = time.monotonic()
    for n in range(4):
        keeper.submit(lambda n=n: done.append((n, time.monotonic() - held)))
    deadline = time.monotonic() + 10
    while len(done) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [n for n, _ in done] == [0, 1, 2, 3]
    # All four at the end of the one hold (1 s), not one more second each.
    assert done[0][1] >= bookkeeping.HOLD_LIMIT_SECONDS * 0.9
    assert done[-1][1] < bookkeeping.HOLD_LIMIT_SECONDS + 0.8, done
