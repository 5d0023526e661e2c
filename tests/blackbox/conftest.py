"""pytest fixtures for the butlerd black-box tests (see harness.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from redisfix import redis_server  # noqa: E402,F401 (the Redis backend's tests, kvfix.py)


def pytest_configure(config):
    if not os.access(harness.binary(), os.X_OK):
        raise pytest.UsageError("butlerd binary not found or not executable: %s "
                                "(set BUTLERD to its absolute path)" % harness.binary())
    # Sanitizer builds: this process's daemons report into a directory of their
    # own, so a report is blamed on the test that was running here (make check
    # runs several test files at once). The CI looks at the whole tree afterwards.
    for var, path in harness.sanitizer_log_paths().items():
        d = os.path.join(os.path.dirname(path), "pytest-%d" % os.getpid())
        os.makedirs(d, exist_ok=True)
        opts = [o for o in os.environ[var].split(":") if not o.startswith("log_path=")]
        os.environ[var] = ":".join(opts + ["log_path=" + os.path.join(d, os.path.basename(path))])


# Tests whose subject does not survive a sanitizer build, with the reason.
_RSS = ("measures the worker's memory; ASan's shadow memory, redzones and quarantine "
        "make that meaningless (the normal pass runs it)")
SANITIZER_SKIP = {
    "test_dump_large_app_bounded_memory": _RSS,
    "test_huge_apps_reply_is_502_and_memory_stays_bounded": _RSS,
    "test_large_apps_reply_under_the_limit_is_read_element_by_element": _RSS,
    "test_200k_keys_old_json_then_current_format": _RSS,
}


def pytest_collection_modifyitems(config, items):
    if not harness.sanitizers_active():
        return
    for item in items:
        why = SANITIZER_SKIP.get(getattr(item, "originalname", item.name))
        if why:
            item.add_marker(pytest.mark.skip(reason="sanitizer build: " + why))


_seen_reports = set()


def _new_sanitizer_reports():
    new = [f for f in harness.sanitizer_reports() if f not in _seen_reports]
    _seen_reports.update(new)
    logs = list(harness.LOG_REPORTS)
    del harness.LOG_REPORTS[:]
    text = ["==== %s ====\n%s" % (f, harness.read_report(f)) for f in new]
    text += ["==== butlerd log in %s ====\n%s" % (where, "\n".join(lines[:200]))
             for where, lines in logs]
    return text


@pytest.fixture(autouse=True)
def _sanitizer_reports():
    """Fails the test during which a sanitizer report appeared (after its daemons
    stopped: this fixture is set up first, so it is torn down last)."""
    if not harness.sanitizers_active():
        yield
        return
    _new_sanitizer_reports()   # anything older belongs to an earlier test
    yield
    text = _new_sanitizer_reports()
    if text:
        pytest.fail("sanitizer report(s):\n" + "\n".join(text), pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    """Reports that came after the last test (module-scoped daemons stop then)."""
    if not harness.sanitizers_active():
        return
    text = _new_sanitizer_reports()
    if text:
        sys.stderr.write("sanitizer report(s) after the last test:\n" + "\n".join(text) + "\n")
        session.exitstatus = 1


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
