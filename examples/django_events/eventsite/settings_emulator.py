"""The events example on the local emulator (`cloudq emulator up --port 4566`): AWS clients
point at it unless the environment already says otherwise."""

import os

from eventsite.settings import *  # noqa: F403

for _name, _value in {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ.setdefault(_name, _value)

CLOUDQ = {**CLOUDQ, "wait_seconds": 5}  # noqa: F405
