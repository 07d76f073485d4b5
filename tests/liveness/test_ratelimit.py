from edge.liveness.ratelimit import FailureLimiter


def test_cooldown_after_repeated_failures_and_window_expiry():
    now = [0.0]
    limiter = FailureLimiter(max_failures=3, window_s=10, cooldown_s=30, clock=lambda: now[0])
    for _ in range(2):
        limiter.record(True)
    limiter.record(False)  # successes do not count
    assert limiter.blocked_for() == 0
    now[0] = 11.0  # the first two failures left the window
    limiter.record(True)
    assert limiter.blocked_for() == 0
    limiter.record(True)
    limiter.record(True)
    assert limiter.blocked_for() == 30.0
    now[0] = 35.0
    assert limiter.blocked_for() == 6.0
    now[0] = 41.5
    assert limiter.blocked_for() == 0
