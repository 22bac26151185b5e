"""The request models check bodies exactly as the generated document describes them."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from forge_nb.api import models, openapi_document
from forge_nb.api.convert import BadInput
from forge_nb.api.openapi import COMPONENTS

BODIES: list[tuple[Any, str, list[Any]]] = [
    (
        models.EnqueueBody,
        "EnqueueRequest",
        [
            {"kind": "k"},
            {"kind": "k", "payload": None, "delay": 0, "scheduled_at": "2030-01-01T00:00:00Z"},
            {"kind": "k", "scheduled_at": 253402300799, "max_attempts": 1, "priority": -3},
            {"kind": ""},
            {"kind": "k", "payload": []},
            {"kind": "k", "delay": True},
            {"kind": "k", "delay": -1},
            {"kind": "k", "scheduled_at": -0.5},
            {"kind": "k", "scheduled_at": 1e300},
            {"kind": "k", "max_attempts": 0},
            {"kind": "k", "priority": 1.5},
            {"kind": "k", "prio": 1},
            {"payload": {}},
            [],
            None,
        ],
    ),
    (
        models.QueueSettings,
        "QueueSettings",
        [
            {"workers": 3},
            {"paused": True, "backoff_base_seconds": 0.5},
            {"workers": -1},
            {"workers": 10_001},
            {"workers": True},
            {"backoff_base_seconds": 0},
            {"retain_done_seconds": -1},
            {"colour": "red"},
            "workers",
        ],
    ),
    (
        models.ScheduleChanges,
        "ScheduleChanges",
        [
            {"enabled": False},
            {"kind": "k", "cron": "0 3 * * *", "payload": {"a": 1}, "queue": "", "tz": "UTC"},
            {"kind": ""},
            {"kind": None},
            {"enabled": "no"},
            {"payload": [1]},
            {"when": "now"},
        ],
    ),
    (
        models.RetryFilter,
        "RetryFilter",
        [
            {},
            {"status": "failed", "queue": "", "kind": None, "search": "x"},
            {"status": "done"},
            {"queue": 5},
            {"when": "now"},
        ],
    ),
]


def accepts(model: Any, body: Any) -> bool:
    try:
        models.checked(body, model, "body")
    except BadInput as exc:
        assert exc.status == 422 and str(exc).startswith("body: ")
        return False
    return True


@pytest.mark.parametrize(("model", "name", "bodies"), BODIES, ids=[b[1] for b in BODIES])
def test_models_and_document_agree(model: Any, name: str, bodies: list[Any]) -> None:
    doc = openapi_document()
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    validator = jsonschema.Draft202012Validator(schema)
    for body in bodies:  # ({} is the one difference: minProperties, checked by the routes)
        assert accepts(model, body) == validator.is_valid(body), body


def test_a_typo_names_the_field_and_the_known_ones() -> None:
    with pytest.raises(BadInput, match=r"unknown field `prio`; known: kind, payload, queue"):
        models.checked({"kind": "k", "prio": 1}, models.EnqueueBody, "job")


def test_every_model_is_a_component_of_the_document() -> None:
    schemas = openapi_document()["components"]["schemas"]
    for model in COMPONENTS:
        assert models.SCHEMA_NAMES.get(model.__name__, model.__name__) in schemas
    assert "EnqueueBody" not in schemas  # published under its old name, EnqueueRequest
