"""The error every data source raises for data it cannot use (modality-neutral)."""


class DataError(ValueError):
    """A dataset that is missing, corrupt, empty or of the wrong shape; the message names the
    file or setting and how to fix it."""
