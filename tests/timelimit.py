"""A time limit for every test (a pytest plugin that tests/run-pytest loads).

A test still running after BUTLERD_TEST_TIMEOUT seconds (default 300, far above
what any test needs) fails with the name of the phase it was in, instead of
holding the whole run until the CI's own limit. SIGALRM interrupts the main
thread wherever it waits (a socket, a subprocess, a sleep)."""

import os
import signal

import pytest

LIMIT = int(os.environ.get("BUTLERD_TEST_TIMEOUT", "300"))


class TestTimeLimit(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    def on_alarm(signum, frame):
        raise TestTimeLimit("%s still running after %d s (BUTLERD_TEST_TIMEOUT)"
                            % (item.nodeid, LIMIT))

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(LIMIT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
