"""The example app of the README and `cloudq demo`."""
