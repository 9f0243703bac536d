"""Where ``make_lazy_proxy`` lived before serialize/proxy/ existed.

Payloads written then name ``serdoctor.serialize._proxy_store.make_lazy_proxy``:
this module keeps that name loadable. New payloads name
``serdoctor.serialize.proxy._store.make_lazy_proxy``.
"""

from __future__ import annotations

from serdoctor.serialize.proxy._store import make_lazy_proxy

__all__ = ["make_lazy_proxy"]
