"""Preference labels from people: fragments as clips on a labelling web page, answers kept in a SQLite file.

- :class:`ClipFormat` (``clips``) encodes a fragment's rendered frames as a looping animated WebP.
- :class:`RenderFrames` (``frames``) puts the image of each step's state into its ``info``, for the recorder.
- :class:`LabelStore` (``store``) keeps the queued pairs and their answers durably, leasing each pair to one page.
- ``server`` (needs the ``web`` extra, so not imported here): the page and its JSON API, ``create_app`` and
  ``serve``; ``python -m sobirl.rlhf.human.server --store FILE`` serves a store.
- :class:`WebLabeller` (``gatherer``) is the :class:`~sobirl.rlhf.PreferenceGatherer` that queues pairs and reads
  the answers back, blocking until they are in or not.

docs/labelling.md describes the page and what is stored.
"""

from sobirl.rlhf.human.clips import CLIP_MEDIA_TYPE, ClipFormat
from sobirl.rlhf.human.frames import RenderFrames
from sobirl.rlhf.human.gatherer import LABELS, WebLabeller
from sobirl.rlhf.human.store import (
    CHOICES,
    AlreadyAnsweredError,
    Answer,
    Collected,
    LabelStore,
    NewPair,
    QueuedPair,
    UnknownPairError,
)

__all__ = [
    "CHOICES",
    "CLIP_MEDIA_TYPE",
    "LABELS",
    "AlreadyAnsweredError",
    "Answer",
    "ClipFormat",
    "Collected",
    "LabelStore",
    "NewPair",
    "QueuedPair",
    "RenderFrames",
    "UnknownPairError",
    "WebLabeller",
]
