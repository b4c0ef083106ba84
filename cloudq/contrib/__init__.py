"""Integrations with frameworks, each an optional extra, never imported by ``import cloudq``."""
