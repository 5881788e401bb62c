"""inbox-daemon: customer email and Slack messages in, customer-service cases out."""

__version__ = "0.1.0"
