"""Celery's task protocol 2 (JSON serializer) as one more decoder and encoder of the codec.

What the codec gets from a transport, for a queue named in ``celery_queues``, is kombu's
message as JSON (the form kombu keeps on Redis)::

    {"body": "<base64 of [args, kwargs, embed]>", "content-type": "application/json",
     "content-encoding": "utf-8", "headers": {"task": …, "id": …, "eta": …, …},
     "properties": {"body_encoding": "base64", "delivery_info": {…}, …}}

Each transport hands that form over, whatever its broker keeps (SQS: base64 of it; RabbitMQ:
the body and the AMQP headers and properties). This module turns it into the ``Message`` the
executor runs, and a ``Message`` back into it. No import of Celery or kombu: the format is
written down here, and the tests check it against a real Celery.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import datetime as dt
import json
from typing import Any

from cloudq.core.errors import DecodeError, MessageTooLargeError
from cloudq.core.ids import random_uuid
from cloudq.core.message import MAX_TASK_ID_CHARS, Message

JSON_CONTENT_TYPE = "application/json"
#: What ``embed`` (the third item of the body) holds when the message has no canvas.
EMPTY_EMBED: dict[str, None] = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
#: What to change when a Celery message is not JSON (its body is never read: issue 25).
_SERIALIZER_FIX = "set task_serializer='json' (and accept_content=['json']) on the Celery side"


def _refuse(reason: str) -> DecodeError:
    return DecodeError(f"Celery message refused: {reason}")


def _json(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _refuse(f"{what} is not JSON ({exc})") from exc


def _envelope(body: str) -> dict[str, Any]:
    envelope = _json(body, "the kombu envelope (on SQS: its base64)")
    if not isinstance(envelope, dict) or not isinstance(envelope.get("headers"), dict):
        raise _refuse("no kombu envelope with headers (not a Celery 4+ message)")
    content_type = envelope.get("content-type")
    if content_type != JSON_CONTENT_TYPE:
        raise _refuse(f"its body is {content_type or 'of no content type'}, not JSON: {_SERIALIZER_FIX}")
    return envelope


def _payload(envelope: dict[str, Any]) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """args, kwargs and embed of the envelope's body."""
    body = envelope.get("body")
    properties = envelope.get("properties")
    encoding = properties.get("body_encoding") if isinstance(properties, dict) else None
    if not isinstance(body, str):
        raise _refuse("the body is not text")
    if encoding == "base64":
        try:
            body = base64.b64decode(body, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise _refuse(f"the body is not base64 of UTF-8 ({exc})") from exc
    elif encoding is not None:
        raise _refuse(f"unknown body_encoding {encoding!r}")
    payload = _json(body, "the body")
    if not (isinstance(payload, list) and len(payload) == 3 and isinstance(payload[0], list)):
        raise _refuse("the body is not [args, kwargs, embed] (task protocol 2)")
    args, kwargs, embed = payload
    if not isinstance(kwargs, dict) or not isinstance(embed, dict):
        raise _refuse("the body is not [args, kwargs, embed] (task protocol 2)")
    return args, kwargs, embed


def _epoch(headers: dict[str, Any], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise _refuse(f"header {name}={value!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:  # Celery writes UTC unless enable_utc is off
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def _text(headers: dict[str, Any], name: str) -> str:
    value = headers.get(name)
    if not isinstance(value, str) or not value or len(value) > MAX_TASK_ID_CHARS:
        raise _refuse(f"header {name!r} is missing or not a task {name}")
    return value


def _optional_text(headers: dict[str, Any], name: str) -> str | None:
    return None if headers.get(name) is None else _text(headers, name)


def decode(body: str) -> Message:
    """The ``Message`` of a kombu message (module docstring); ``DecodeError`` with what to
    change on the Celery side when cloudq cannot run it as it was meant."""
    envelope = _envelope(body)
    headers: dict[str, Any] = envelope["headers"]
    if "task" not in headers and "id" not in headers:
        raise _refuse("no task header: task protocol 1? set task_protocol=2 (Celery's default)")
    task, task_id = _text(headers, "task"), _text(headers, "id")
    args, kwargs, embed = _payload(envelope)
    canvas = sorted(name for name, value in embed.items() if value)
    if canvas:
        raise _refuse(
            f"it carries {', '.join(canvas)} (a Celery canvas): cloudq does not run Celery's "
            "callbacks; send the workflow with cloudq's canvas, or keep this queue on Celery"
        )
    retries = headers.get("retries") or 0
    if not isinstance(retries, int) or retries < 0:
        raise _refuse(f"header retries={retries!r} is not a count")
    return Message(
        id=task_id,
        task=task,
        args=args,
        kwargs=kwargs,
        retries=retries,
        eta=_epoch(headers, "eta"),
        expires=_epoch(headers, "expires"),
        parent_id=_optional_text(headers, "parent_id"),
        root_id=_optional_text(headers, "root_id"),
    ).as_celery()


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat()


def encode(message: Message, queue: str, max_bytes: int) -> str:
    """``message`` as kombu's message JSON (what a Celery 5 producer writes, protocol 2), for
    ``queue`` (its routing key); ``MessageTooLargeError`` past ``max_bytes``."""
    body = json.dumps([message.args, message.kwargs, EMPTY_EMBED], separators=(",", ":"))
    headers = {
        "lang": "py",
        "task": message.task,
        "id": message.id,
        "shadow": None,
        "eta": _iso(message.eta),
        "expires": _iso(message.expires),
        "group": None,
        "group_index": None,
        "retries": message.retries,
        "timelimit": [None, None],
        "root_id": message.root_id or message.id,
        "parent_id": message.parent_id,
        "argsrepr": repr(tuple(message.args)),
        "kwargsrepr": repr(message.kwargs),
        "origin": "cloudq",
        "ignore_result": False,
    }
    properties = {
        "correlation_id": message.id,
        "reply_to": "",
        "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": queue},
        "priority": 0,
        "body_encoding": "base64",
        "delivery_tag": random_uuid(),
    }
    envelope = {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": JSON_CONTENT_TYPE,
        "headers": headers,
        "properties": properties,
    }
    encoded = json.dumps(envelope, ensure_ascii=False)
    if len(encoded.encode()) > max_bytes:
        raise MessageTooLargeError(
            f"task {message.task!r} Celery message is {len(encoded.encode())} bytes, over the "
            f"broker limit of {max_bytes} bytes (no claim check on a Celery queue: Celery cannot read it)"
        )
    return encoded


def looks_like_celery(body: str) -> bool:
    """Whether ``body`` is a kombu message of a Celery task, as JSON or as its base64 (SQS).
    Only to say so when one reaches a queue that is not a Celery queue: nothing is run by it."""
    for text in (body, _unbase64(body)):
        try:
            envelope = json.loads(text) if text else None
        except (ValueError, RecursionError):
            continue
        if isinstance(envelope, dict) and isinstance(envelope.get("headers"), dict):
            return "task" in envelope["headers"]
    return False


def _unbase64(body: str) -> str | None:
    try:
        return base64.b64decode(body, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


# -- results -----------------------------------------------------------------------------

#: Celery's key-value backends keep a task's result under this prefix and its id.
RESULT_KEY_PREFIX = "celery-task-meta-"
#: Error types Celery's ``AsyncResult.get()`` may raise as they are (``exc_module`` builtins);
#: any other type is raised as a class of that name Celery makes up (``exc_module`` None).
_BUILTIN_ERRORS = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)


def result_key(task_id: str) -> str:
    """The key (and, on Redis, the pub/sub channel) of a task's result in Celery's backends."""
    return RESULT_KEY_PREFIX + task_id


def result_meta(
    task_id: str,
    state: str,
    value: Any = None,
    error: tuple[str, str, str] | None = None,
    date_done: float | None = None,
) -> str:
    """A task's result as Celery's backends keep it (JSON result serializer): the
    ``{status, result, traceback, children, date_done, task_id}`` that Celery's
    ``AsyncResult`` reads. A failure's result is Celery's exception form."""
    result = value
    trace = None
    if error is not None:
        error_type, text, trace = error
        module = "builtins" if error_type in _BUILTIN_ERRORS else None
        result = {"exc_type": error_type, "exc_message": [text], "exc_module": module}
    meta = {
        "status": state,
        "result": result,
        "traceback": trace or None,
        "children": [],
        "date_done": _iso(date_done),
        "task_id": task_id,
    }
    return json.dumps(meta, ensure_ascii=False, separators=(",", ":"))
