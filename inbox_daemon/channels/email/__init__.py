"""The email channel: IMAP, Maildir and stdin intake, parsing, SMTP delivery.

``settings.py`` holds the ``[[mailbox]]`` sections (nothing is imported here, so that
``config.py`` can name ``MailboxSettings`` without loading the rest of the channel).
"""
