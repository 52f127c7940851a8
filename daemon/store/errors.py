"""What the store raises: one base (`StoreError`) that callers can catch for "the database
cannot be used", and the two that a worker or a person meets in normal operation."""

from __future__ import annotations


class StoreError(Exception):
    """The database cannot be used as configured; the message says why and what to do."""


class LeaseLost(StoreError):
    """The worker no longer holds this job (lease expired and requeued, or cancelled)."""


class JobNotFound(StoreError):
    """No job with that id."""


class NoDatabase(StoreError):
    """A read-only command found no lmd database to read (and created none)."""
