"""Operations: status and its view, CloudWatch reads, dead letters list and replay (the
readers the CLI uses). Knows nothing of the executor's internals."""
