"""Several machines: two ``torchrun`` launchers on this machine stand in for two nodes."""

from __future__ import annotations

import pytest
import torch

from tests.trainer.dist import order_scenarios
from tests.trainer.dist.launchers import two_nodes
from tests.trainer.dist.test_data_order import (
    KINDS,
    assert_same_weights,
    check_matrix,
    records,
    weights,
)
from tests.trainer.dist.test_ddp import FAILING_RUN

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="torch.distributed is not available")


@pytest.mark.slow
def test_two_nodes_train_to_the_weights_of_one_machine_with_two_processes(tmp_path):
    nodes, one_machine = tmp_path / "nodes", tmp_path / "one"
    results = two_nodes(order_scenarios.__file__, str(nodes))
    for node, proc in enumerate(results):
        assert proc.returncode == 0, f"node {node}: {proc.stderr[-3000:]}"
    check_matrix(nodes, 2)
    for kind in KINDS:
        order_scenarios.run(one_machine, kind, devices=2)
        for run in ("straight", "resumed"):
            name = f"{kind}-{run}"
            assert records(nodes, name, 2) == records(one_machine, name, 2), name
            assert_same_weights(weights(nodes, name), weights(one_machine, name))


@pytest.mark.slow
def test_two_nodes_train_fsdp_to_the_weights_of_one_machine_with_two_processes(tmp_path):
    nodes, one_machine = tmp_path / "nodes", tmp_path / "one"
    results = two_nodes(order_scenarios.__file__, str(nodes), "fsdp:iter")
    for node, proc in enumerate(results):
        assert proc.returncode == 0, f"node {node}: {proc.stderr[-3000:]}"
    order_scenarios.run(one_machine, "iter", devices=2, strategy="fsdp")
    for run in ("straight", "resumed"):
        name = f"iter-{run}"
        assert records(nodes, name, 2) == records(one_machine, name, 2), name
        assert_same_weights(weights(nodes, name), weights(one_machine, name))
        assert_same_weights(weights(nodes, name, rank=1), weights(one_machine, name))
    assert_same_weights(weights(nodes, "iter-resumed"), weights(nodes, "iter-straight"))


@pytest.mark.slow
def test_a_failure_on_the_second_node_ends_the_whole_job_with_its_message(tmp_path):
    """Its process raises at iteration 3; the other node's would train 100,000 iterations.

    Both launchers exit with an error, well within the limit (the process group's timeout is
    30 s; the limit leaves room for starting two interpreters on a busy machine).
    """
    first, second = two_nodes(str(FAILING_RUN), str(tmp_path / "run"), "1",
                              node_env=({"FAIL_HERE": "0"}, {"FAIL_HERE": "1"}), timeout=150)
    assert first.returncode != 0 and second.returncode != 0
    assert "gave up at iteration 3" in second.stderr
