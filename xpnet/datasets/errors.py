"""Errors raised while reading, finding or downloading data sets."""

from __future__ import annotations


class DatasetError(ValueError):
    """A data file is missing, corrupt or inconsistent; the message names the file and the fault."""


class DatasetUnavailableError(DatasetError):
    """A data set could not be found locally nor downloaded; the message says how to get it."""
