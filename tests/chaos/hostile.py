"""Hostile SQS messages for the poison scenario, generated with hypothesis strategies.

Each ``Hostile`` is a body, its SQS message attributes, and the reasons a worker may give
for dead-lettering it. Everything is deterministic for a given seed. Bodies keep to the
characters SQS accepts (the sender would be refused otherwise, not the worker); within that,
anything goes: random text, random bytes decoded with replacement characters, JSON of the
wrong shape, envelopes naming unknown tasks or carrying arguments of the wrong type, forged,
tampered or missing signatures, and a few bodies near the 1 MiB limit. ``celery_garbage``
makes bodies shaped like Celery's for a Celery queue: bad base64, another task protocol,
missing headers, a body in another serializer than JSON (YAML, msgpack), a Celery canvas.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from cloudq.core.message import Message

#: Reasons by what the body is (a dead-letter reason starts with one of them).
DECODE = ("DecodeError", "SignatureError")  # random text may happen to be a bare envelope
UNKNOWN = ("unknown task",)
ARGUMENTS = ("ArgumentError",)
FORGED = ("SignatureError",)
SQS_MAX_MESSAGE_BYTES = 1024 * 1024
#: Message attributes per SQS message at most.
SQS_MAX_ATTRIBUTES = 10
KNOWN_TASKS = ("add", "record", "echo", "typed", "sleep", "pid")


@dataclass(frozen=True)
class Hostile:
    kind: str
    body: str
    reasons: tuple[str, ...]
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)


def sqs_text(text: str) -> str:
    """Keep the characters SQS accepts in a body: #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD
    #x10000-#x10FFFF."""
    return "".join(
        ch
        for ch in text
        if ch in "\t\n\r"
        or 0x20 <= ord(ch) <= 0xD7FF
        or 0xE000 <= ord(ch) <= 0xFFFD
        or 0x10000 <= ord(ch) <= 0x10FFFF
    )


_text = st.text(max_size=300).map(sqs_text).filter(bool)
_decoded_bytes = st.binary(min_size=1, max_size=300).map(lambda raw: sqs_text(raw.decode("utf-8", "replace")))
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
_envelope_keys = st.sampled_from(["v", "id", "task", "args", "kwargs", "retries", "eta", "signature", "x"])
#: Envelope-like objects of the wrong shape: wrong types for known fields, unknown fields, a
#: version from the future, or not an object at all.
_wrong_shape = st.one_of(
    _json.filter(lambda value: not isinstance(value, dict)),
    st.dictionaries(_envelope_keys, _json, min_size=1, max_size=6).filter(
        lambda value: not isinstance(value.get("task"), str) or "x" in value
    ),
    st.fixed_dictionaries({"v": st.integers().filter(lambda v: v != 1), "task": st.just("add")}),
    # ids no result backend can key (DynamoDB refuses empty keys and keys over 2048 bytes)
    st.fixed_dictionaries(
        {
            "id": st.just("") | st.text(min_size=256, max_size=700),
            "task": st.just("add"),
            "args": st.just([1, 2]),
        }
    ),
)
_unknown_name = _text.filter(lambda name: name not in KNOWN_TASKS)
#: Arguments ``add(a: int, b: int)`` can never accept: wrong arity, unknown keywords, or
#: values no lax int conversion takes.
_not_int = st.none() | st.lists(st.integers(), max_size=2) | st.dictionaries(_text, st.integers(), max_size=2)
_bad_add = st.one_of(
    st.tuples(st.lists(st.integers(), max_size=5).filter(lambda args: len(args) != 2), st.just({})),
    st.tuples(st.tuples(_not_int, st.integers()).map(list), st.just({})),
    st.tuples(
        st.just([1, 2]), st.dictionaries(_text.filter(lambda k: k not in ("a", "b")), _json, min_size=1)
    ),
)
_attribute_name = st.from_regex(r"\A[A-Za-z0-9_-][A-Za-z0-9_.-]{0,40}\Z").filter(
    lambda name: (
        ".." not in name and not name.endswith(".") and not name.lower().startswith(("aws.", "amazon."))
    )
) | st.sampled_from(["cloudq-dead-letter", "cloudq-dead-letter-reason", "cloudq-source-queue"])
_attribute_value = st.one_of(
    _text.map(lambda v: {"DataType": "String", "StringValue": v}),
    st.integers().map(lambda v: {"DataType": "Number", "StringValue": str(v)}),
    st.binary(min_size=1, max_size=64).map(lambda v: {"DataType": "Binary", "BinaryValue": v}),
)
_attributes = st.dictionaries(_attribute_name, _attribute_value, max_size=SQS_MAX_ATTRIBUTES)


def _envelope(task_id: uuid.UUID, task: str, args: list[Any], kwargs: dict[str, Any]) -> Message:
    return Message(id=str(task_id), task=task, args=args, kwargs=kwargs)


def hostile_strategy(key: str) -> st.SearchStrategy[Hostile]:
    """One hostile message; envelopes that must pass the signature check are signed with
    ``key``, the worker's signing key."""
    forged_key = _text.filter(lambda other: other != key)

    def forged(task_id: uuid.UUID, draw_key: str, how: int, tag: str) -> str:
        message = _envelope(task_id, "record", [tag], {})
        if how == 0:  # signed with a key the worker does not know
            return message.signed(draw_key).encode(SQS_MAX_MESSAGE_BYTES)
        if how == 1:  # not signed at all
            return message.encode(SQS_MAX_MESSAGE_BYTES)
        # signed with the right key, then its arguments changed in transit
        tampered = message.signed(key).model_copy(update={"args": [tag + "!"]})
        return tampered.encode(SQS_MAX_MESSAGE_BYTES)

    def signed(task_id: uuid.UUID, task: str, args: list[Any], kwargs: dict[str, Any]) -> str:
        return _envelope(task_id, task, args, kwargs).signed(key).encode(SQS_MAX_MESSAGE_BYTES)

    bodies = st.one_of(
        _text.map(lambda body: ("text", body, DECODE)),
        _decoded_bytes.filter(bool).map(lambda body: ("bytes", body, DECODE)),
        _wrong_shape.map(lambda value: ("shape", sqs_text(json.dumps(value)), DECODE)),
        st.tuples(st.uuids(), _unknown_name, st.lists(_json, max_size=3)).map(
            lambda drawn: ("unknown", signed(drawn[0], drawn[1], drawn[2], {}), UNKNOWN)
        ),
        st.tuples(st.uuids(), _bad_add).map(
            lambda drawn: ("arguments", signed(drawn[0], "add", *drawn[1]), ARGUMENTS)
        ),
        st.tuples(st.uuids(), forged_key, st.integers(0, 2), _text).map(
            lambda drawn: ("forged", forged(*drawn), FORGED)
        ),
    )
    return st.builds(
        lambda drawn, attributes: Hostile(drawn[0], drawn[1], drawn[2], attributes),
        bodies.filter(lambda drawn: bool(drawn[1])),
        _attributes,
    )


def generate(key: str, count: int, fixed_seed: int = 20240505) -> list[Hostile]:
    """``count`` hostile messages, the same ones for the same seed."""
    found: list[Hostile] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @seed(fixed_seed)
    @given(hostile_strategy(key))
    def collect(hostile: Hostile) -> None:
        found.append(hostile)

    collect()
    return found[:count]


def huge(key: str, count: int, fixed_seed: int = 7) -> list[Hostile]:
    """``count`` bodies just under SQS's 1 MiB (generating them through hypothesis would be
    slow): raw text, an unknown task with a huge argument, a forged envelope."""
    rng = random.Random(fixed_seed)
    made: list[Hostile] = []
    for index in range(count):
        room = SQS_MAX_MESSAGE_BYTES - rng.randint(400, 4000)
        task_id = uuid.UUID(int=rng.getrandbits(128))
        kind = index % 3
        if kind == 0:
            made.append(Hostile("huge", "é" * (room // 2), DECODE))
        elif kind == 1:
            body = (
                _envelope(task_id, "no.such.task", ["x" * room], {}).signed(key).encode(SQS_MAX_MESSAGE_BYTES)
            )
            made.append(Hostile("huge", body, UNKNOWN))
        else:
            message = _envelope(task_id, "record", ["x" * room], {}).signed(key + "forged")
            made.append(Hostile("huge", message.encode(SQS_MAX_MESSAGE_BYTES), FORGED))
    return made


# -- Celery-shaped garbage (issue 25) ----------------------------------------------------

#: What a Celery queue's dead letters say, by what is wrong (``cloudq.core.celery_protocol``).
_REFUSED = "DecodeError: Celery message refused: "
CELERY_REASONS = {
    "bad-base64": (_REFUSED + "the kombu envelope (on SQS: its base64) is not JSON",),
    "body-not-base64": (_REFUSED + "the body is not base64 of UTF-8",),
    "protocol-1": (_REFUSED + "no task header: task protocol 1?",),
    "not-protocol-2": (_REFUSED + "the body is not [args, kwargs, embed] (task protocol 2)",),
    "no-headers": (_REFUSED + "no kombu envelope with headers",),
    "no-id": (_REFUSED + "header 'id' is missing",),
    "yaml": (_REFUSED + "its body is application/x-yaml, not JSON: set task_serializer='json'",),
    "msgpack": (_REFUSED + "its body is application/x-msgpack, not JSON: set task_serializer='json'",),
    "canvas": (_REFUSED + "it carries callbacks (a Celery canvas)",),
    "unknown": ("unknown task 'proj.tasks.no_such_task'",),
}


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _kombu(rng: random.Random, headers: dict[str, Any] | None, body: str, content_type: str) -> str:
    """Kombu's message on SQS (the base64 of its JSON), with the given parts."""
    envelope: dict[str, Any] = {
        "body": body,
        "content-type": content_type,
        "content-encoding": "utf-8" if content_type.endswith(("json", "yaml")) else "binary",
        "properties": {"body_encoding": "base64", "delivery_tag": str(uuid.UUID(int=rng.getrandbits(128)))},
    }
    if headers is not None:
        envelope["headers"] = headers
    return _b64(json.dumps(envelope))


def celery_garbage(count: int, fixed_seed: int = 25) -> list[Hostile]:
    """``count`` SQS bodies shaped like Celery's that cloudq cannot run, each kind in turn
    (``CELERY_REASONS``), their random parts drawn from ``fixed_seed``."""
    rng = random.Random(fixed_seed)
    kinds = list(CELERY_REASONS)
    made = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        task_id = str(uuid.UUID(int=rng.getrandbits(128)))
        headers = {"lang": "py", "task": "proj.tasks.add", "id": task_id, "retries": 0}
        args = _b64(json.dumps([[rng.randint(0, 99), rng.randint(0, 99)], {}, {"callbacks": None}]))
        noise = "".join(rng.choice("abc%$!-_=+/") for _ in range(rng.randint(8, 60)))
        body = {
            "bad-base64": noise,
            "body-not-base64": _kombu(rng, headers, "%" + noise, "application/json"),
            "protocol-1": _kombu(
                rng, {}, _b64(json.dumps({"task": "proj.tasks.add", "id": task_id})), "application/json"
            ),
            "not-protocol-2": _kombu(rng, headers, _b64(json.dumps({"args": [1, 2]})), "application/json"),
            "no-headers": _kombu(rng, None, args, "application/json"),
            "no-id": _kombu(rng, {"task": "proj.tasks.add"}, args, "application/json"),
            "yaml": _kombu(rng, headers, _b64(f"- [{rng.randint(0, 9)}, 2]\n- {{}}\n"), "application/x-yaml"),
            "msgpack": _kombu(rng, headers, _b64(rng.randbytes(rng.randint(4, 40))), "application/x-msgpack"),
            "canvas": _kombu(
                rng,
                headers,
                _b64(json.dumps([[1, 2], {}, {"callbacks": [{"task": "x"}]}])),
                "application/json",
            ),
            "unknown": _kombu(rng, {**headers, "task": "proj.tasks.no_such_task"}, args, "application/json"),
        }[kind]
        made.append(Hostile(f"celery-{kind}", body, CELERY_REASONS[kind]))
    return made
