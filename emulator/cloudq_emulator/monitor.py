"""The live line of ``cloudq emulator up``: the function's invocations (counted from its
CloudWatch Logs ``REPORT`` lines, which the emulator writes for every invocation as AWS does),
its timeouts, the last duration, and each queue's depth, all read through boto3."""

from __future__ import annotations

import re
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from cloudq.infra import Resources

DURATION = re.compile(r"\tDuration: ([0-9.]+) ms")
DEPTH = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")


class Monitor:
    def __init__(self, resources: Resources, endpoint_url: str, region_name: str = "us-east-1") -> None:
        self.resources = resources
        self._sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name=region_name)
        self._logs = boto3.client("logs", endpoint_url=endpoint_url, region_name=region_name)
        self._urls: dict[str, str] = {}
        self._seen: set[str] = set()
        self._since_ms = 0
        self.invocations = 0
        self.timeouts = 0
        self.last_duration = ""

    def line(self) -> str:
        """One line: ``invocations 12 (errors 0) · shop-default 3 ready 1 in flight, dlq 0 · …``"""
        try:
            parts = []
            function = self.resources.function
            if function is not None:
                self._read_logs(function.function_name)
                last = f", last {self.last_duration}" if self.last_duration else ""
                parts.append(f"invocations {self.invocations} (timed out {self.timeouts}{last})")
            for queue in self.resources.queues:
                ready, in_flight = self._depth(queue.name)
                dead, _ = self._depth(queue.dead_letter_name)
                parts.append(f"{queue.name} {ready} ready {in_flight} in flight, dlq {dead}")
            return " · ".join(parts)
        except (BotoCoreError, ClientError, KeyError, ValueError) as exc:
            return f"cannot read the emulator: {exc!r}"

    def _depth(self, name: str) -> tuple[int, int]:
        if name not in self._urls:
            self._urls[name] = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
        found = self._sqs.get_queue_attributes(QueueUrl=self._urls[name], AttributeNames=list(DEPTH))
        return int(found["Attributes"][DEPTH[0]]), int(found["Attributes"][DEPTH[1]])

    def _read_logs(self, function_name: str) -> None:
        """Count the invocations logged since the last call."""
        options: dict[str, Any] = {
            "logGroupName": f"/aws/lambda/{function_name}",
            "startTime": self._since_ms,
        }
        try:
            while True:
                page = self._logs.filter_log_events(**options)
                for event in page.get("events", []):
                    # The emulator's events carry no eventId: stream, time and text identify one.
                    key = f"{event.get('logStreamName')}|{event['timestamp']}|{event['message']}"
                    if key in self._seen:
                        continue
                    self._seen.add(key)
                    self._since_ms = max(self._since_ms, int(event["timestamp"]))
                    self._count(str(event["message"]))
                if not page.get("nextToken"):
                    return
                options["nextToken"] = page["nextToken"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":  # no invocation yet
                raise

    def _count(self, message: str) -> None:
        if message.startswith("REPORT "):
            self.invocations += 1
            duration = DURATION.search(message)
            if duration:
                self.last_duration = f"{duration.group(1)} ms"
        elif "Task timed out" in message:
            self.timeouts += 1
