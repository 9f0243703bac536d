"""Where ``_rebuild_exception`` lived before serialize/exceptions/ existed.

Payloads written then name ``serdoctor.serialize._remote_exc._rebuild_exception``
(checkpoint stores keep them): this module keeps that name loadable. New
payloads name ``serdoctor.serialize.exceptions._remote._rebuild_exception``.
"""

from __future__ import annotations

from serdoctor.serialize.exceptions._remote import _rebuild_exception

__all__ = ["_rebuild_exception"]
