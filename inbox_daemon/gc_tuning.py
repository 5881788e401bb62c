"""The cyclic garbage collector, set for a process that makes many short-lived objects.

Intake makes tens of thousands of objects per batch (parsed MIME trees in the parse worker,
rows and their ORM state in the daemon), nearly all freed by reference counting. With
CPython's default thresholds (700 allocations) the collector still runs every few hundred of
them and walks the young objects each time: about 5 % of intake's time in
``bench/ingest.py``. Collecting the youngest generation every 20,000 allocations instead costs
a little memory (garbage in cycles waits a little longer) and none of that time; what the
process built at start-up is frozen out of the collector's walks altogether.
"""

from __future__ import annotations

import gc

#: Allocations between collections of the youngest generation, then how many of those
#: before the next generation is collected, and the same for the oldest.
THRESHOLDS = (20_000, 50, 100)


def tune_gc() -> None:
    """Set :data:`THRESHOLDS` and freeze what exists now (call once start-up is done)."""
    gc.set_threshold(*THRESHOLDS)
    gc.freeze()
