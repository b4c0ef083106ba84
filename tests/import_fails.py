"""A tasks module whose import raises something other than ImportError (as a Django tasks
module does when settings are not configured): for the CLI's bad-input tests."""

raise RuntimeError("settings are not configured")
