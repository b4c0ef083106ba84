"""The app's AWS resources as one model, read by provisioning (emulator) and rendering."""

from cloudq.infra.model import LambdaResource, QueueResource, Resources, TableResource, app_resources

__all__ = ["LambdaResource", "QueueResource", "Resources", "TableResource", "app_resources"]
