"""The channel-agnostic intake pipeline (``pipeline.py``) and how routing shapes cases
(``routing.py``)."""

from inbox_daemon.ingest.pipeline import Ingestor, IntakeOptions

__all__ = ["Ingestor", "IntakeOptions"]
