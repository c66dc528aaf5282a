"""locbench: a visual-localization benchmark harness built around MASt3R."""

__version__ = "0.1.0"
PROTOCOL_VERSION = "1"  # bump when a metric or protocol detail changes numbers
