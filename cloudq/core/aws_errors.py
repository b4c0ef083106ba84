"""botocore's exception types, imported when first used rather than with the engines.

Engines catch botocore's errors at their one boundary (``_mapped``), and the lean path raises
the same types (``cloudq.core.lean.errors``). Naming them here as attributes, looked up when an
``except`` clause is reached (Python evaluates its expression only then), keeps botocore out
of the import of the engines: on Lambda, with the lean path, the handler's path never imports
botocore (about 120 ms of a cold start) unless something fails.

    from cloudq.core import aws_errors

    try:
        ...
    except aws_errors.ClientError as exc:
        ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )

__all__ = ["BotoCoreError", "ClientError", "NoCredentialsError", "PartialCredentialsError"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import botocore.exceptions

    value = getattr(botocore.exceptions, name)
    globals()[name] = value
    return value
