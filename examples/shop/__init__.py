"""The example app of the README's quickstart and `cloudq demo`."""
