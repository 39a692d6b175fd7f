"""temporal-shift: the Temporal Shift Module (TSM, ICCV 2019) for video action recognition."""

__version__ = "0.1.0"
