import pytest

from device.web.auth import LoginLimiter, Sessions


def test_limiter_locks_after_max_failures_within_the_window() -> None:
    limiter = LoginLimiter(max_failures=3, window_s=60)
    keys = ["addr:1.2.3.4", "account:installer"]
    for t in (0, 1, 2):
        assert limiter.attempt(keys, now=t) == 0
    assert limiter.attempt(keys, now=3) == pytest.approx(57)
    assert limiter.attempt(["addr:5.6.7.8", "account:installer"], now=3) > 0  # the account is locked too
    assert limiter.attempt(keys, now=61) == 0  # the window moved on


def test_limiter_forgets_old_keys_and_keeps_a_bounded_number() -> None:
    limiter = LoginLimiter(max_failures=3, window_s=60, max_keys=100)
    for n in range(1000):
        assert limiter.attempt([f"addr:10.0.{n // 256}.{n % 256}"], now=n / 100) == 0
    assert len(limiter) == 100  # the newest 100 addresses
    assert limiter.sweep(now=30) == 0
    assert limiter.sweep(now=10 + 60) == 100 and len(limiter) == 0


def test_limiter_forgets_a_key_after_a_success() -> None:
    limiter = LoginLimiter(max_failures=2, window_s=60)
    keys = ["addr:1.2.3.4", "account:homeowner"]
    limiter.attempt(keys, now=0)
    limiter.succeeded(keys)
    assert limiter.attempt(keys, now=1) == 0 and limiter.attempt(keys, now=2) == 0
    assert limiter.attempt(keys, now=3) > 0


async def test_sessions_expire_and_are_swept() -> None:
    sessions = Sessions(lifetime_s=100)
    session = await sessions.new("homeowner")
    assert sessions.get(session.id) is session
    assert sessions.get(session.id, now=session.expires + 1) is None
    assert await sessions.sweep(now=session.expires + 1) == 1
    assert sessions.get("forged") is None and sessions.get(None) is None


def test_anonymous_sessions_are_derived_not_stored() -> None:
    sessions = Sessions(lifetime_s=100)
    first = sessions.anonymous(None)
    again = sessions.anonymous(first.id)
    assert again.id == first.id and again.csrf == first.csrf and len(sessions) == 0
    assert sessions.anonymous("forged").id != "forged"  # not one of ours: a new id
    assert Sessions(lifetime_s=100).anonymous(first.id).csrf != first.csrf  # a key per process
