"""XFRM (IPsec) netlink: message layouts on pyroute2's framework, and a socket API."""

from .api import Algorithm, Event, Migration, Policy, Selector, State, Template, XfrmError, XfrmSocket
from .messages import GROUPS

__all__ = [
    "GROUPS", "Algorithm", "Event", "Migration", "Policy", "Selector", "State", "Template", "XfrmError", "XfrmSocket",
]
