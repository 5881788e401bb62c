"""Channels: translate mailboxes and Slack into InboundMessages and OutboundMessages back."""
