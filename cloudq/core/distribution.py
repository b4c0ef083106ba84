"""The names cloudq is installed under (the import name stays ``cloudq``; ``cloudq`` on the
public package index is an unrelated project)."""

#: The core package: ``pip install 'cloudq-aws[cli]'``.
DISTRIBUTION = "cloudq-aws"
#: The local AWS emulator, a distribution of its own (package ``cloudq_emulator``).
EMULATOR_DISTRIBUTION = "cloudq-aws-emulator"
#: The version of both (``cloudq.__version__``, the AWS clients' user agent).
VERSION = "0.1.0"
