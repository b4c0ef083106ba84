"""Local AWS for cloudq."""
