"""EventBridge Scheduler: where an SQS app's run-time schedules live (``app.schedules``).

Each schedule sits in the app's own schedule group (``cloudq infra render`` creates it) and
targets one SQS queue with a fixed body, sent by the stack's Scheduler role; a one-off
``at()`` schedule deletes itself after it fires (``ActionAfterCompletion: DELETE``). This is an
engine: it stores what it is given (an expression, a target, a body) and maps botocore's
errors at one boundary; what the body holds is the codec's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

from cloudq.core.aws import aws_client
from cloudq.core.errors import ConfigurationError, CredentialsError, ScheduleExistsError, TransportError

#: ListSchedules' largest page.
LIST_PAGE = 100


@dataclass(frozen=True)
class ScheduledTarget:
    """One schedule as Scheduler holds it."""

    name: str
    expression: str
    timezone: str
    #: The queue's ARN, and the body it gets every tick.
    target_arn: str
    body: str


def default_client(endpoint_url: str | None = None, region_name: str | None = None) -> Any:
    return aws_client("scheduler", endpoint_url, region_name, read_timeout=10)


class SchedulerStore:
    """The schedules of one schedule group, sent with ``role_arn``."""

    def __init__(
        self,
        group: str,
        role_arn: str | None,
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
    ) -> None:
        self.group = group
        self.role_arn = role_arn
        self.client = client or default_client(endpoint_url, region_name)

    @contextmanager
    def _mapped(self, name: str, *, creating: bool = False) -> Iterator[None]:
        """The one boundary where botocore errors become cloudq errors. A missing resource
        is the group when creating or listing (``name`` empty), else the schedule."""
        try:
            yield
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise CredentialsError(f"no AWS credentials for EventBridge Scheduler: {exc}") from exc
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConflictException":
                raise ScheduleExistsError(f"schedule {name!r} exists; delete it first") from exc
            if code == "ResourceNotFoundException" and (creating or not name):
                raise ConfigurationError(
                    f"schedule group {self.group!r} does not exist: deploy the app's stack "
                    "('cloudq infra render', or 'cloudq emulator up' locally)"
                ) from exc
            raise TransportError(f"EventBridge Scheduler {code} on schedule {name!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise TransportError(f"EventBridge Scheduler unreachable (schedule {name!r}): {exc}") from exc

    def create(self, target: ScheduledTarget, *, one_off: bool) -> None:
        """Create ``target``'s schedule; ``ScheduleExistsError`` when its name is taken."""
        if not self.role_arn:
            raise ConfigurationError(
                "EventBridge Scheduler needs the app's Scheduler role: set scheduler_role_arn "
                "(CLOUDQ_SCHEDULER_ROLE_ARN) to the SchedulerRoleArn output of the app's stack"
            )
        with self._mapped(target.name, creating=True):
            self.client.create_schedule(
                Name=target.name,
                GroupName=self.group,
                ScheduleExpression=target.expression,
                ScheduleExpressionTimezone=target.timezone,
                FlexibleTimeWindow={"Mode": "OFF"},
                State="ENABLED",
                ActionAfterCompletion="DELETE" if one_off else "NONE",
                Target={"Arn": target.target_arn, "RoleArn": self.role_arn, "Input": target.body},
            )

    def delete(self, name: str) -> bool:
        """Delete schedule ``name``: ``False`` when there is none."""
        try:
            with self._mapped(name):
                self.client.delete_schedule(Name=name, GroupName=self.group)
        except TransportError as exc:
            if _code(exc) == "ResourceNotFoundException":
                return False
            raise
        return True

    def list(self) -> list[ScheduledTarget]:
        """Every schedule of the group, by name (one GetSchedule each: ListSchedules holds
        no expression or body)."""
        names: list[str] = []
        token: dict[str, str] = {}
        while True:
            with self._mapped(""):
                page = self.client.list_schedules(GroupName=self.group, MaxResults=LIST_PAGE, **token)
            names += [summary["Name"] for summary in page.get("Schedules", [])]
            if not page.get("NextToken"):
                break
            token = {"NextToken": page["NextToken"]}
        found = []
        for name in sorted(names):
            try:
                with self._mapped(name):
                    got = self.client.get_schedule(Name=name, GroupName=self.group)
            except TransportError as exc:
                if _code(exc) == "ResourceNotFoundException":
                    continue  # deleted since it was listed (a one-off that fired)
                raise
            target = got.get("Target", {})
            found.append(
                ScheduledTarget(
                    name=name,
                    expression=got["ScheduleExpression"],
                    timezone=got.get("ScheduleExpressionTimezone") or "UTC",
                    target_arn=target.get("Arn", ""),
                    body=target.get("Input", ""),
                )
            )
        return found


def _code(exc: Exception) -> str:
    cause = exc.__cause__
    return cause.response.get("Error", {}).get("Code", "") if isinstance(cause, ClientError) else ""
