"""``python -m inbox_daemon`` runs the command line."""

from inbox_daemon.cli import main

if __name__ == "__main__":  # not when a worker process imports the main module
    raise SystemExit(main())
