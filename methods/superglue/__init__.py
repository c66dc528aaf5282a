"""SuperPoint + SuperGlue, our own implementation loading the released Magic Leap weight files."""

from .matcher import SuperGlueMatcher  # noqa: F401  (registers "superglue")
