"""The lean data path: the hot AWS calls without botocore (docs/guides/lean-path.md)."""
