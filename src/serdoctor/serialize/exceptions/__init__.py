"""Remote exceptions: exceptions that cross processes and stay catchable.

Every exception serdoctor's picklers meet is sent as a record of primitives
(``_record``) and rebuilt on arrival (``_rebuild``): the real class when it
exists there, a stand-in subclassing its nearest importable bases when it does
not, with cause, context, notes, group members, the remote frames (``_frames``)
and the remote traceback text (``_text``). ``_values`` holds the rules for an
exception's arguments and attributes. See docs/exceptions.md.
"""

from __future__ import annotations

from serdoctor.serialize.exceptions._remote import (
    RemoteBaseException,
    RemoteChainTruncated,
    RemoteException,
    reduce_exception,
)

__all__ = ["RemoteBaseException", "RemoteChainTruncated", "RemoteException", "reduce_exception"]
