"""The ``cloudq`` console script. click lives in the ``cli`` extra, so say how to get it."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        import click  # noqa: F401
    except ImportError:
        from cloudq.core.distribution import DISTRIBUTION

        sys.stderr.write(f"cloudq: the command line needs click; pip install '{DISTRIBUTION}[cli]'\n")
        raise SystemExit(2) from None
    from cloudq.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
