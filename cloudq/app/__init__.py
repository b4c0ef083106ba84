"""What an application is made of: ``CloudQ`` (registry, routing), tasks, sending,
signatures and canvas, results, hooks, asyncio sending, loading an app. Knows nothing of
workers or Lambda (but for the documented up-call ``CloudQ.lambda_handler``)."""
