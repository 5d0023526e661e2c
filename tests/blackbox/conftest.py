"""pytest fixtures for the butlerd black-box tests (see harness.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


def pytest_configure(config):
    if not os.access(harness.binary(), os.X_OK):
        raise pytest.UsageError("butlerd binary not found or not executable: %s "
                                "(set BUTLERD to its absolute path)" % harness.binary())


@pytest.fixture(scope="session")
def butlerd_version():
    return harness.version()


@pytest.fixture
def start_daemon(tmp_path):
    """Factory: start_daemon(overrides=None, extra="", workers=2) -> running Daemon.
    Every daemon started this way is stopped at teardown."""
    started = []

    def start(overrides=None, extra="", workers=2, args=()):
        d = harness.Daemon(tmp_path / ("d%d" % len(started)), overrides, extra, workers, args)
        os.makedirs(d.tmpdir, exist_ok=True)
        started.append(d)
        return d.start()

    yield start
    for d in started:
        d.stop()
        # shown by pytest only when the test failed
        print(d.log_tail(200))


@pytest.fixture
def daemon(start_daemon):
    """A daemon with the default test configuration, for one test."""
    return start_daemon()


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory):
    """A daemon with the default test configuration shared by a module's
    read-only tests."""
    d = harness.Daemon(tmp_path_factory.mktemp("shared"))
    d.start()
    yield d
    d.stop()
    print(d.log_tail(200))
