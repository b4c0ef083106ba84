"""``cloudq dashboard``: a web page over the ops readers (the ``dashboard`` extra: Starlette,
uvicorn, Jinja2).

The pages read what ``cloudq status`` and ``cloudq dlq`` read, through the same code
(``cloudq.ops``): depths from the broker's counters, dead letters by the receive-and-hand-back
of ``cloudq dlq list``, a task by one GetItem of its id. Nothing scans the result table and
nothing receives from a live queue. HTML is rendered on the server; the queue panel refreshes
itself with htmx (vendored in ``static/``, 0BSD, from the npm package ``htmx.org`` 2.0.11), so
the page works offline.

Modules: ``security`` (bind rules, Host check, token, CSRF), ``samples`` (the sparklines' own
samples), ``server`` (the Starlette app).
"""
