"""Postgres wake-ups: every enqueue is announced, a burst by a few NOTIFYs rather than one each.

Other processes LISTEN for queue names; a NOTIFY per awaited one-job enqueue cost a third of
that enqueue's CPU, so one process sends at most one per `NOTIFY_GAP_S` and the enqueues in
between share it. Checked from a second connection, as another worker process would hear it.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from forge_nb.storage import open_storage
from forge_nb.storage.postgres import NOTIFY_CHANNEL
from forge_nb.storage.postgres_notify import NOTIFY_GAP_S, Notifier
from forge_nb.storage.records import NewJob


async def test_a_burst_of_enqueues_shares_notifies_and_the_last_one_is_announced(
    pg_url: str,
) -> None:
    heard: list[tuple[float, str]] = []
    listener = await asyncpg.connect(pg_url)
    await listener.add_listener(
        NOTIFY_CHANNEL, lambda *args: heard.append((time.monotonic(), args[3]))
    )
    storage = await open_storage(pg_url)
    try:
        start = time.monotonic()
        for i in range(200):
            last_enqueued = time.monotonic()  # its NOTIFY may come at its commit, or after
            await storage.enqueue([NewJob(kind="k", queue="burst", payload={"i": i})], 1.0)
        for _ in range(300):  # the last enqueue's queue is announced, soon
            if heard and heard[-1][0] >= last_enqueued:
                break
            await asyncio.sleep(0.01)
        assert heard and heard[-1][0] >= last_enqueued, "the burst's tail was never announced"
        assert {queue for _, queue in heard} == {"burst"}
        elapsed = heard[-1][0] - start
        assert len(heard) <= elapsed / NOTIFY_GAP_S + 2, (len(heard), elapsed)

        # Two queues enqueued within one gap go out together, each named once.
        heard.clear()
        await asyncio.sleep(NOTIFY_GAP_S * 5)
        for queue in ("a", "b", "a"):
            await storage.enqueue([NewJob(kind="k", queue=queue)], 1.0)
        for _ in range(300):
            if {"a", "b"} <= {queue for _, queue in heard}:
                break
            await asyncio.sleep(0.01)
        assert {"a", "b"} <= {queue for _, queue in heard}
    finally:
        await storage.close()
        await listener.close()


async def test_the_first_notify_goes_at_once_and_the_rest_of_a_gap_share_one() -> None:
    sent: list[tuple[float, list[str]]] = []

    async def send(queues: list[str]) -> None:  # stands in for the NOTIFY statement
        sent.append((time.monotonic(), queues))

    notifier = Notifier(send)
    start = time.monotonic()
    notifier.send({"a"})
    for _ in range(3):
        await asyncio.sleep(0)
    assert [q for _, q in sent] == [["a"]], "the first goes out without waiting"
    for queue in ("b", "a", "c"):  # within the same gap: one NOTIFY after it
        notifier.send({queue})
        await asyncio.sleep(0)
    await notifier.flush()
    assert [q for _, q in sent] == [["a"], ["a", "b", "c"]]
    assert sent[1][0] - start >= NOTIFY_GAP_S * 0.9
    await asyncio.sleep(NOTIFY_GAP_S * 2)  # a quiet spell: the next one goes at once again
    notifier.send({"d"})
    for _ in range(3):
        await asyncio.sleep(0)
    assert sent[-1][1] == ["d"]


async def test_an_enqueue_due_a_notify_carries_it_with_those_waiting_for_the_gap() -> None:
    sent: list[list[str]] = []

    async def send(queues: list[str]) -> None:  # stands in for the NOTIFY statement
        sent.append(queues)

    notifier = Notifier(send)
    announced: list[str] = []
    assert notifier.take_inline({"a"}) == ["a"], "after a quiet spell: in the statement"
    announced.append("a")
    for queue in "bcdefg":  # a burst: each one either carried inline or sent after it
        taken = notifier.take_inline({queue})
        if taken:
            announced += taken
        else:
            notifier.send({queue})  # what the storage does once the insert committed
        await asyncio.sleep(NOTIFY_GAP_S / 3)
    await notifier.flush()
    announced += [q for queues in sent for q in queues]
    assert sorted(announced) == list("abcdefg"), "each queue announced exactly once"
    assert all(sent), "no empty NOTIFY is ever sent"


async def test_each_enqueue_is_heard_once_its_statement_commits(pg_url: str) -> None:
    heard: list[str] = []
    listener = await asyncpg.connect(pg_url)
    await listener.add_listener(NOTIFY_CHANNEL, lambda *args: heard.append(args[3]))
    storage = await open_storage(pg_url)
    try:
        for queue in ("q1", "q2", "q1"):
            await asyncio.sleep(NOTIFY_GAP_S * 3)  # each one due: NOTIFY in its statement
            await storage.enqueue([NewJob(kind="k", queue=queue)], 1.0)
            for _ in range(300):
                if len(heard) == 1:
                    break
                await asyncio.sleep(0.01)
            assert heard == [queue]
            heard.clear()
        assert {c.name for c in await storage.queues()} >= {"q1", "q2"}
    finally:
        await storage.close()
        await listener.close()
