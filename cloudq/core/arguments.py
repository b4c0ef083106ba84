"""Task arguments: checked against the function's signature and type hints at ``.delay()``
time, carried as JSON, and turned back into their hinted types on the worker.

Pydantic does both directions, so a ``datetime``, ``UUID``, ``Decimal`` or model parameter
arrives as itself. A value with no JSON form (an ORM object, a file, a custom class) is refused
in the caller's process with a message that says to pass an id instead.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from pydantic import PydanticSchemaGenerationError, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from cloudq.core.errors import ArgumentError

JSON_SCALARS = (str, int, float, bool, type(None))


def is_json(value: Any) -> bool:
    """True for values made only of JSON types (str keys, lists, scalars)."""
    if isinstance(value, JSON_SCALARS):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json(v) for k, v in value.items())
    return False


def _not_json(name: str, value: Any, expected: str | None = None) -> ArgumentError:
    kind = type(value).__name__
    what = f"should be {expected}, not {kind}" if expected else f"is a {kind}"
    return ArgumentError(
        f"argument {name!r} {what}, which cannot travel as JSON; pass an id "
        f"(e.g. {kind.lower()}.id) and load the object inside the task"
    )


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else repr(hint).replace("typing.", "")


#: Stands for an argument given later (a chain link's previous result).
_LATER = object()


class Arguments:
    """The signature of one task function, with a pydantic adapter per hinted parameter.

    Adapters are built on first use, not at import, so decorating tasks stays cheap (Lambda
    cold starts import every task module).
    """

    def __init__(self, fn: Callable[..., Any], skip_first: bool) -> None:
        self._fn = fn
        self._skip_first = skip_first
        self._adapters: dict[str, TypeAdapter[Any] | None] | None = None
        self._returns: TypeAdapter[Any] | None = None
        #: Whether ``_returns`` is known: resolving the hints once, not once per task run.
        self._returns_known = False
        self._signature: inspect.Signature | None = None
        self._hints: dict[str, Any] | None = None
        #: ``_positional``, worked out once.
        self._positional_names: tuple[tuple[str, ...], int] | None = None
        self._positional_known = False

    @property
    def signature(self) -> inspect.Signature:
        if self._signature is None:
            signature = inspect.signature(self._fn)
            params = list(signature.parameters.values())
            self._signature = signature.replace(parameters=params[1:] if self._skip_first else params)
        return self._signature

    def _positional(self) -> tuple[tuple[str, ...], int] | None:
        """The parameter names and how many of them are required, when every parameter can be
        given by position (no ``*args``, ``**kwargs`` or keyword-only one); else ``None``."""
        if self._positional_known:
            return self._positional_names
        params = self.signature.parameters.values()
        if all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
            required = sum(1 for p in params if p.default is p.empty)
            self._positional_names = (tuple(p.name for p in params), required)
        self._positional_known = True
        return self._positional_names

    def _adapter(self, name: str) -> TypeAdapter[Any] | None:
        if self._adapters is None:
            self._adapters = self._build_adapters()
        return self._adapters.get(name)

    @property
    def hints(self) -> dict[str, Any]:
        """The function's resolved annotations, resolved once."""
        if self._hints is None:
            self._hints = typing.get_type_hints(self._fn)
        return self._hints

    def _hint(self, name: str) -> Any:
        return self.hints.get(name, Any)

    def _build_adapters(self) -> dict[str, TypeAdapter[Any] | None]:
        hints = self.hints
        adapters: dict[str, TypeAdapter[Any] | None] = {}
        for name, param in self.signature.parameters.items():
            hint = hints.get(name, Any)
            if param.kind is param.VAR_POSITIONAL:
                hint = tuple[hint, ...]  # type: ignore[valid-type]
            elif param.kind is param.VAR_KEYWORD:
                hint = dict[str, hint]  # type: ignore[valid-type]
            adapters[name] = None if hint is Any else self._make_adapter(name, hint)
        return adapters

    def _make_adapter(self, name: str, hint: Any) -> TypeAdapter[Any]:
        try:
            return TypeAdapter(hint)
        except PydanticSchemaGenerationError:
            raise ArgumentError(
                f"parameter {name!r} of task {self._fn.__qualname__} is annotated {hint!r}, "
                "which cannot travel as JSON; annotate it with an id type and load the object "
                "inside the task"
            ) from None

    def _bind(self, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        try:
            return self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ArgumentError(f"{self._fn.__qualname__}(): {exc}") from None

    def encode(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], leading: int = 0
    ) -> tuple[list[Any], dict[str, Any]]:
        """Validate the caller's arguments and return their JSON form (``args``, ``kwargs``).

        ``leading``: that many positional arguments will be put first later (a chain passes
        the previous result): they are left out here, and the rest checked in their places."""
        names = self._names_in_place(leading + len(args), kwargs)
        if names is not None:
            return [self._to_json(name, value) for name, value in zip(names[leading:], args, strict=True)], {}
        bound = self._bind((*[_LATER] * leading, *args), kwargs)
        for name, value in bound.arguments.items():
            if value is _LATER or (isinstance(value, tuple) and _LATER in value):
                continue
            bound.arguments[name] = self._to_json(name, value)
        return list(bound.args)[leading:], dict(bound.kwargs)

    def check_partial(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """``ArgumentError`` unless ``args`` and ``kwargs`` could start a call (none too many,
        no unknown name) and are JSON; their places are checked when they are known."""
        try:
            self.signature.bind_partial(*args, **kwargs)
        except TypeError as exc:
            raise ArgumentError(f"{self._fn.__qualname__}(): {exc}") from None
        for name, value in [*enumerate(args), *kwargs.items()]:
            if not is_json(value):
                raise _not_json(str(name), value)

    def _to_json(self, name: str, value: Any) -> Any:
        adapter = self._adapter(name)
        if adapter is None:
            if not is_json(value):
                raise _not_json(name, value)
            return value
        try:
            return adapter.dump_python(adapter.validate_python(value), mode="json")
        except ValidationError as exc:
            if not is_json(value):  # an ORM object for an id parameter, most often
                raise _not_json(name, value, _type_name(self._hint(name))) from None
            raise ArgumentError(f"argument {name!r}: {exc.errors()[0]['msg']}") from None
        except PydanticSerializationError:
            raise _not_json(name, value) from None

    def decode(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Turn JSON arguments from a message back into the hinted types."""
        names = self._names_in_place(len(args), kwargs)
        if names is not None:
            return tuple(self._from_json(name, value) for name, value in zip(names, args, strict=True)), {}
        bound = self._bind(args, kwargs)
        for name, value in bound.arguments.items():
            bound.arguments[name] = self._from_json(name, value)
        return bound.args, bound.kwargs

    def _from_json(self, name: str, value: Any) -> Any:
        adapter = self._adapter(name)
        if adapter is None:
            return value
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            raise ArgumentError(f"argument {name!r}: {exc.errors()[0]['msg']}") from None

    def _names_in_place(self, given: int, kwargs: dict[str, Any]) -> tuple[str, ...] | None:
        """The names of the parameters that ``given`` positional arguments fill, when they are
        all there is (no keywords) and every parameter can be given by position: what binding
        them gives, without binding (every ``.delay()`` and every run). ``None``: bind them
        (a keyword, ``*args``, or too few or too many, whose error binding words)."""
        positional = self._positional()
        if kwargs or positional is None:
            return None
        names, required = positional
        return names[:given] if required <= given <= len(names) else None

    def _return_adapter(self) -> TypeAdapter[Any] | None:
        if not self._returns_known:
            hint = self._hint("return")
            if not (hint is Any or hint is None or hint is type(None)):
                self._returns = TypeAdapter(hint)
            self._returns_known = True
        return self._returns

    def result_to_json(self, value: Any) -> Any:
        """A task's return value as JSON; ``ArgumentError`` when it has no JSON form."""
        adapter = self._return_adapter()
        if adapter is not None:
            try:
                return adapter.dump_python(value, mode="json")
            except PydanticSerializationError:
                pass
        elif is_json(value):
            return value
        raise ArgumentError(
            f"task {self._fn.__qualname__} returned a {type(value).__name__}, which cannot be "
            "stored as JSON; return plain data or an id"
        )

    def result_from_json(self, value: Any) -> Any:
        """A stored JSON result as the task's return type (``datetime`` back to ``datetime``)."""
        adapter = self._return_adapter()
        return value if adapter is None else adapter.validate_python(value)
