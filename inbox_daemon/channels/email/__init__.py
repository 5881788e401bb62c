"""The email channel: IMAP, Maildir and stdin intake, parsing, SMTP delivery."""
