"""The failed-credential counter, on an injected clock."""

from __future__ import annotations

from cloud_sync.limits import FailureLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_within_the_window_block_until_the_oldest_leaves_it() -> None:
    clock = Clock()
    limiter = FailureLimiter(3, 60.0, clock)
    keys = ("src:10.0.0.1", "dev:pi-1")
    for _ in range(3):
        assert limiter.retry_after(keys) is None
        limiter.charge(keys)
        clock.now += 10
    assert limiter.retry_after(keys) == 30.0  # the first failure (at 1000) leaves the window at 1060
    assert limiter.retry_after(("src:10.0.0.2",)) is None  # another address is not affected
    clock.now = 1060.0
    assert limiter.retry_after(keys) is None


def test_a_success_refunds_its_charge() -> None:
    clock = Clock()
    limiter = FailureLimiter(1, 60.0, clock)
    stamp = limiter.charge(("dev:pi-1",))
    assert limiter.retry_after(("dev:pi-1",)) == 60.0  # an attempt in flight counts already
    limiter.refund(("dev:pi-1",), stamp)
    assert limiter.retry_after(("dev:pi-1",)) is None


def test_the_number_of_keys_is_bounded() -> None:
    clock = Clock()
    limiter = FailureLimiter(1, 60.0, clock, max_keys=100)
    for n in range(1000):
        limiter.charge((f"dev:guess-{n}",))
    assert limiter.retry_after(("dev:guess-999",)) == 60.0
    assert limiter.retry_after(("dev:guess-0",)) is None  # forgotten first
