"""Joining an existing multi-process Ray cluster (two raylets on this machine) instead of
starting a private Ray: the same code path as a multi-machine cluster."""

import json

import pytest

from fedrule.report.run import run_scenario
from fedrule.scenario import scenario_from_dict
from tests.fleets import fleet_scenario

pytestmark = pytest.mark.slow


@pytest.fixture
def local_cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)  # a second node process: work is spread over two raylets
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


def test_run_joins_an_existing_cluster(tmp_path, local_cluster):
    import ray

    raw = fleet_scenario()
    raw["engine"]["ray_address"] = local_cluster.address
    folder = run_scenario(scenario_from_dict(raw), tmp_path)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["seeds"]["0"]["rounds"][-1]["trained"] > 0
    assert not ray.is_initialized()  # the run disconnects; the cluster itself keeps running
    assert len(local_cluster.list_all_nodes()) == 2
