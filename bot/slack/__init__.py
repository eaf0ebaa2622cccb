"""Slack's side: Block Kit, limits, posting once, user groups, signed modal metadata."""
