"""The errors carbonlog raises on purpose, under one base the CLI and users can catch."""

from __future__ import annotations


class CarbonlogError(Exception):
    """Base of every error carbonlog raises itself."""


class ConfigurationError(CarbonlogError, ValueError):
    """A bad option or environment setting, raised at construction, before training starts."""
