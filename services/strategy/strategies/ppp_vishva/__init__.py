"""PPP Vishva, as defined in the project's spec (shared/specs/ppp-vishva.md)."""

from services.strategy.strategies.ppp_vishva.strategy import PPPVishva

__all__ = ["PPPVishva"]
