"""Typed HTTP clients for Interpedia's services.

`interpedia_clients.<service>.models` and `.client` are generated from
`schemas/<service>.json` by `make generate`; `base.py` is the hand-written
transport they share. Services call each other only through these.
"""

from interpedia_clients.base import ServiceError

__all__ = ["ServiceError"]
