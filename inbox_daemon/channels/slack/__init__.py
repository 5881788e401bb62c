"""The Slack channel: customer intake channels, agent case cards and buttons, thread replies,
the ``/case`` command, and outgoing replies into the customer's thread.

``settings.py`` the ``[slack]`` section; ``app.py`` the bolt app (``SlackApp``) and how it is
served (Socket Mode or HTTP); ``handlers.py`` the listeners; ``intake.py`` events → deliveries
(``files.py`` downloads, ``profiles.py`` user look-ups); ``cards.py`` Block Kit; ``sender.py``
the outbox's sender (``SlackSender``); ``actions.py`` the agent-actions protocol the layer above
implements; ``background.py`` the work done after Slack is answered; ``errors.py`` Slack's error
codes.

Only the settings are imported here, so that ``config.py`` can name ``SlackSettings`` without
loading slack-bolt; import the rest from its module (``inbox_daemon.channels.slack.app``…).
"""

from .settings import SlackSecrets, SlackSettings

__all__ = ["SlackSecrets", "SlackSettings"]
