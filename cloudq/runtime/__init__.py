"""The runtime: what turns received messages into work done (the executor, the worker and its
parts, the supervisor, beat, metrics, log lines). Nothing here knows how a message arrived
except the adapters (``cloudq.runtime.worker``, ``cloudq.aws_lambda``)."""
