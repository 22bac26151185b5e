"""Storage contract, run unchanged on SQLite and Postgres: queue configuration."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from forge_nb.errors import UnknownQueue
from forge_nb.storage import Storage
from forge_nb.storage.records import (
    QueueConfig,
)
from tests.storage.contract_support import (
    zero_counts,
)

# -- queues ----------------------------------------------------------------------------------------


async def test_ensure_queue_is_idempotent_and_applies_knobs(storage: Storage) -> None:
    config = await storage.ensure_queue("gpu", workers=2, paused=True, backoff_base_seconds=2)
    assert config == QueueConfig("gpu", workers=2, paused=True, backoff_base_seconds=2.0)
    assert await storage.ensure_queue("gpu") == config, "ensure without knobs resets nothing"
    again = await storage.ensure_queue("gpu", workers=4)
    assert again == dataclasses.replace(config, workers=4)
    assert await storage.queues() == [again]


async def test_new_queue_has_the_default_config(storage: Storage) -> None:
    assert await storage.ensure_queue("plain") == QueueConfig("plain")
    assert await storage.counts() == {"plain": zero_counts()}


async def test_queues_are_listed_by_name(storage: Storage) -> None:
    for name in ("b", "a", "c"):
        await storage.ensure_queue(name)
    assert [q.name for q in await storage.queues()] == ["a", "b", "c"]


async def test_update_queue_changes_every_knob(storage: Storage) -> None:
    await storage.ensure_queue("q")
    knobs = {
        "workers": 0,
        "paused": True,
        "backoff_enabled": False,
        "backoff_base_seconds": 0.5,
        "backoff_max_seconds": 60,
        "backoff_jitter": False,
        "retain_done_seconds": 0,
        "retain_dead_seconds": 3600.5,
    }
    config = await storage.update_queue("q", **knobs)
    expected = QueueConfig(
        "q", **{k: float(v) if k.endswith("seconds") else v for k, v in knobs.items()}
    )
    assert config == expected
    assert await storage.queues() == [expected]
    assert isinstance(config.backoff_max_seconds, float)


BAD_KNOBS = [
    pytest.param({"colour": "red"}, "colour", id="unknown-knob"),
    pytest.param({"workers": 5, "colour": "red"}, "colour", id="unknown-knob-with-valid-one"),
    pytest.param({"workers": -1}, "workers", id="negative-workers"),
    pytest.param({"workers": "3"}, "workers", id="str-workers"),
    pytest.param({"workers": 2.5}, "workers", id="float-workers"),
    pytest.param({"workers": True}, "workers", id="bool-workers"),
    pytest.param({"paused": "yes"}, "paused", id="str-paused"),
    pytest.param({"paused": 1}, "paused", id="int-paused"),
    pytest.param({"backoff_base_seconds": "1"}, "backoff_base_seconds", id="str-seconds"),
    pytest.param({"backoff_max_seconds": -5.0}, "backoff_max_seconds", id="negative-seconds"),
    pytest.param({"retain_done_seconds": float("nan")}, "retain_done_seconds", id="nan-seconds"),
]


@pytest.mark.parametrize(("knobs", "message"), BAD_KNOBS)
async def test_update_queue_rejects_bad_knobs_and_changes_nothing(
    storage: Storage, knobs: dict[str, Any], message: str
) -> None:
    before = await storage.ensure_queue("q", workers=3)
    with pytest.raises(ValueError, match=message):
        await storage.update_queue("q", **knobs)
    assert await storage.queues() == [before]


@pytest.mark.parametrize(("knobs", "message"), BAD_KNOBS)
async def test_ensure_queue_with_bad_knobs_creates_nothing(
    storage: Storage, knobs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await storage.ensure_queue("new", **knobs)
    assert await storage.queues() == []


@pytest.mark.parametrize("name", ["", "   "])
async def test_ensure_queue_rejects_a_blank_name(storage: Storage, name: str) -> None:
    with pytest.raises(ValueError, match="queue"):
        await storage.ensure_queue(name)
    assert await storage.queues() == []


@pytest.mark.parametrize("knobs", [{}, {"paused": True}])
async def test_update_of_an_unknown_queue(storage: Storage, knobs: dict[str, Any]) -> None:
    await storage.ensure_queue("known")
    with pytest.raises(UnknownQueue, match="nope"):
        await storage.update_queue("nope", **knobs)
    assert issubclass(UnknownQueue, ValueError)
    assert [q.name for q in await storage.queues()] == ["known"]


async def test_backoff_knobs_take_their_spec_names_and_the_prefixed_aliases(
    storage: Storage,
) -> None:
    await storage.ensure_queue("q")
    config = await storage.update_queue("q", base_seconds=2, max_seconds=30, jitter=False)
    assert (config.backoff_base_seconds, config.backoff_max_seconds, config.backoff_jitter) == (
        2.0,
        30.0,
        False,
    )
    assert (config.base_seconds, config.max_seconds, config.jitter) == (2.0, 30.0, False)
    again = await storage.update_queue("q", backoff_base_seconds=3, base_seconds=3)
    assert again.base_seconds == 3.0, "both names for one knob are fine when they agree"
    made = await storage.ensure_queue("new", base_seconds=0.5, backoff_enabled=False)
    assert (made.backoff_base_seconds, made.backoff_enabled) == (0.5, False)


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        pytest.param({"base_seconds": 1, "backoff_base_seconds": 2}, "one setting", id="clash"),
        pytest.param({"base_seconds": 0}, "backoff_base_seconds must be > 0", id="zero-base"),
        pytest.param({"jitter": "no"}, "backoff_jitter", id="str-jitter"),
        pytest.param({"max_seconds": 1, "base_seconds": 5}, "backoff_max", id="max-below-base"),
    ],
)
async def test_spec_named_knobs_are_checked_like_the_prefixed_ones(
    storage: Storage, knobs: dict[str, Any], message: str
) -> None:
    before = await storage.ensure_queue("q", workers=3)
    with pytest.raises(ValueError, match=message):
        await storage.update_queue("q", **knobs)
    assert await storage.queues() == [before]
