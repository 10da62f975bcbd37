"""What the recorder says when it cannot record as asked."""

__all__ = ["RecorderWarning", "RecorderError"]


class RecorderWarning(UserWarning):
    """Something the recorder cannot record as asked (given once per recorder and cause)."""


class RecorderError(RuntimeError):
    """What would be a :class:`RecorderWarning`, raised instead because ``strict=True``."""
