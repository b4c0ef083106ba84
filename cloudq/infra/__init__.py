"""The app's AWS resources as one model, read by provisioning (emulator) and rendering.

The model is imported on first use: ``cloudq.core.naming`` is on every send and receive
path (``import cloudq``, a Lambda cold start), the resource models are not (issue 14).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudq.infra.model import LambdaResource, QueueResource, Resources, TableResource, app_resources

__all__ = ["LambdaResource", "QueueResource", "Resources", "TableResource", "app_resources"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from cloudq.infra import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
