import pytest

from device.web.auth import LoginLimiter, Sessions


def test_limiter_locks_after_max_failures_within_the_window() -> None:
    limiter = LoginLimiter(max_failures=3, window_s=60)
    keys = ["addr:1.2.3.4", "account:installer"]
    for t in (0, 1, 2):
        assert limiter.retry_after(keys, now=t) == 0
        limiter.failed(keys, now=t)
    assert limiter.retry_after(keys, now=3) == pytest.approx(57)
    assert limiter.retry_after(["addr:5.6.7.8", "account:installer"], now=3) > 0  # the account is locked too
    assert limiter.retry_after(keys, now=61) == 0  # the window moved on


def test_sessions_expire_and_are_swept() -> None:
    sessions = Sessions(lifetime_s=100)
    session = sessions.new("homeowner")
    assert sessions.get(session.id) is session
    assert sessions.get(session.id, now=session.expires + 1) is None
    assert sessions.sweep(now=session.expires + 1) == 1
    assert sessions.get("forged") is None and sessions.get(None) is None
