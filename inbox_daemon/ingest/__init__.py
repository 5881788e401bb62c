"""The channel-agnostic intake: the transaction (``pipeline.py``), where each message goes
(``placement.py``), how routing shapes cases (``routing.py``), what a batch looks up once
(``lookups.py``) and what is set aside (``setaside.py``)."""

from inbox_daemon.ingest.pipeline import Ingestor, IntakeOptions

__all__ = ["Ingestor", "IntakeOptions"]
