"""Real servers started by the integration tests on 127.0.0.1 (Dovecot, ...).

Each module owns one kind of server and offers pytest fixtures; a ``conftest.py`` next to the
tests that use them imports the fixtures.
"""
