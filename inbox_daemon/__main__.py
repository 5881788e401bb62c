"""``python -m inbox_daemon`` runs the command line."""

from inbox_daemon.cli import main

raise SystemExit(main())
