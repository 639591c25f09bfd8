"""The training engines the job-lifecycle tests run against: the embedded process pool, and Ray on a
real local cluster (2 CPUs, no dashboard, a small object store) that this test session starts once
and stops at its end. A test takes the ``engine`` fixture and passes its flags to ``spinr serve``."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

ENGINES = ["process", pytest.param("ray", marks=pytest.mark.ray)]
RAY_OBJECT_STORE = 80 * 1024 * 1024
"""Bytes of the test cluster's object store (Ray's minimum is 75 MiB; the tasks pass file paths)."""


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """A local Ray cluster with 2 CPUs; yields its address (``host:port``) for ``spinr serve
    --ray-address``. This process is its driver: the cluster stops with the session. Ray names this
    machine by its own address, never loopback (``services.resolve_ip_for_localhost``); the cluster
    requires Ray's token (generated for local clusters since Ray 2.59), which the servers this
    session starts read from the same home folder."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (make setup installs it)")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=RAY_OBJECT_STORE,
        log_to_driver=False,
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> list[str]:
    """``spinr serve`` flags selecting the engine under test (module-scoped: a module's server is
    started once per engine)."""
    if request.param == "process":
        return ["--engine", "process"]
    address = request.getfixturevalue("ray_cluster")
    return ["--engine", "ray", "--ray-address", address]
