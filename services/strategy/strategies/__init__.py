"""Strategies: parameter schemas, templates and rules; see base.py for the API."""
