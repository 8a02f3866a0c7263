"""Marks tests that must run inside the QEMU guest kernel (kprobes, function tracer).

On the host they are skipped with the reason printed; tests/test_guest_stage.py boots the guest once and runs
all of them there, so in CI they run rather than skip.
"""

from __future__ import annotations

import os

import pytest

IN_GUEST = os.environ.get("UNITRACE_IN_GUEST") == "1"

guest_only = [
    pytest.mark.guest,
    pytest.mark.skipif(not IN_GUEST, reason="runs inside the QEMU guest kernel (tests/test_guest_stage.py)"),
]
