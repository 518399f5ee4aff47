"""Deprecated alias: importance sampling lives in :mod:`vsm.importance` (use ``vsm.is_log_evidence``)."""

from .importance import is_log_evidence

__all__ = ["is_log_evidence"]
