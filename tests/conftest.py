"""Shared test settings: quiet Ray, two torch threads, passive OpenMP waiting, and every radio-nas
cache in a temporary folder for the session (tests never write under the home folder)."""

import os
import shutil
import tempfile

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Tests run throwaway local Ray clusters on loopback; the sweep itself never turns auth off.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# idle OpenMP threads sleep instead of spinning: the pytest process and Ray workers share 2 cores
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The root of every radio-nas cache (teachers/, latency/): one temporary folder per test session,
# set before anything imports radio_nas so subprocesses and Ray workers inherit it too.
_CACHE = tempfile.mkdtemp(prefix="radio-nas-test-cache-")
os.environ["RADIO_NAS_CACHE"] = _CACHE

import torch  # noqa: E402  (after the environment above)

torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def _session_cache() -> object:
    yield _CACHE
    shutil.rmtree(_CACHE, ignore_errors=True)
