"""Wall-clock times as repro writes them: UTC, to the second. Never part of a fingerprint."""

from __future__ import annotations

import time


def utc_now() -> str:
    """ISO 8601 with a Z: ``2026-05-09T07:35:25Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def utc_stamp() -> str:
    """The compact form run ids start with: ``20260509T073525Z``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
