"""Errors a user can cause and fix. The CLI prints them on one line and exits non-zero."""


class BenchError(Exception):
    """An error the user caused and can fix; the message names the input and the fix."""


class ScenarioError(BenchError):
    """A scenario file or override is invalid."""


class ImageError(BenchError):
    """An input image is missing, unreadable or too large."""


class ModelError(BenchError):
    """A model path is missing or not a loadable checkpoint."""


class BackendError(BenchError):
    """An engine is missing, failed to start, or stopped answering."""
