"""The lowest layer: the envelope and codec, config, retry policy, argument checking,
schedules' grammar, physical names and limits, ids, urls, the request context, the clock.
It imports nothing of cloudq above it."""
