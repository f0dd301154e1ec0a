# ruff: noqa: E501
"""What a failed data-parallel cell says, read from Ray Train 2.60's own error text (recorded
from a real run: rank 1 killed with SIGKILL during a barrier; rank 0 then failed on gloo's
closed connection)."""
from __future__ import annotations

from hrvs_ray.cluster.failures import FailureKind
from hrvs_ray.cluster.ray_train import rank_failure

KILLED = """Training failed due to worker errors:
[Rank 0 Error Snippet]:
Traceback (most recent call last):
  File "/work/hrvs_ray/train/data_parallel.py", line 189, in run_rank
    work.wait()
RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]:37281. This is typically caused by a remote worker crashing.

[Rank 1 Error Snippet]:
A worker health check failed.
Worker info: Worker(
  actor=Actor(RayTrainWorker, c1a01bad8d55ab91a829b42d01000000),
  metadata=ActorMetadata(hostname='vm', node_ip='127.0.0.1', pid=20917),
)
The actor died unexpectedly before finishing this task.
The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a connection error code 2. End of file. Some common causes include: (1) the process was killed by the OOM killer due to high memory usage, (2) ray stop --force was called, or (3) the worker crashed unexpectedly due to SIGSEGV or another unexpected error.
"""

RAISED = """Training failed due to worker errors:
[Rank 1 Error Snippet]:
Traceback (most recent call last):
  File "/work/hrvs_ray/cluster/ray_train.py", line 268, in _train_loop
IndexError: tuple index out of range
"""

PINS = {0: {"pid": 20900, "node": "vm"}, 1: {"pid": 20917, "node": "vm"}}


def test_the_rank_whose_health_check_failed_is_the_one_named_and_no_signal_is_guessed():
    f = rank_failure(Exception(KILLED), PINS, [])
    assert f.kind is FailureKind.PROCESS_DIED
    assert "rank 1 (pid 20917) on vm" in f.detail and "rank 0" not in f.detail
    assert "SIGSEGV" not in f.detail and "does not say" in f.detail


def test_a_rank_that_raised_is_the_cells_own_error_in_its_words():
    f = rank_failure(Exception(RAISED), PINS, [])
    assert f.kind is FailureKind.CELL_ERROR
    assert f.detail == "rank 1 (pid 20917) on vm: IndexError: tuple index out of range"


def test_a_node_lost_cause_from_the_driving_task_is_kept_not_wrapped_again():
    from hrvs_ray.cluster.dp_dispatch import GroupRunning, _failure
    from hrvs_ray.cluster.nodes import NodeView

    gone = NodeView("id-b", "vm", {}, 1, 0, name="vm-b")
    r = GroupRunning(None, [NodeView("id-a", "vm", {}, 1, 0, name="vm-a"), gone], 0.0)  # type: ignore[arg-type]
    said = "node lost: vm-b left the cluster mid-cell; rank 1 (pid 20917) on vm-b died"
    f = _failure(said, r, [gone], 300)
    assert f.kind is FailureKind.NODE_LOST and str(f) == said
    # the driving task saw a rank die before Ray had the node dead: the node is named first
    f = _failure("process died: rank 1 (pid 20917) on vm-b died", r, [gone], 300)
    assert f.kind is FailureKind.NODE_LOST
    assert f.detail == "vm-b left the cluster mid-cell (process died: rank 1 (pid 20917) on vm-b died)"
