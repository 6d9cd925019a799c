"""sgdkit.parallel: two gloo processes on 127.0.0.1 give the combined batch's gradient, and
train to the same parameters as one process with the same total batch."""

import socket

import pytest
import torch

from sgdkit import parallel


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread in this process, as in each worker: for a model this small, threads
    that wait for each other on a busy 2-core machine cost 100x more than they save."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_shards_partition_the_batch_evenly():
    shards = [parallel.shard(64, rank, 4) for rank in range(4)]
    assert [(s.start, s.stop) for s in shards] == [(0, 16), (16, 32), (32, 48), (48, 64)]
    with pytest.raises(ValueError, match="not divisible by world_size 2"):
        parallel.shard(63, 0, 2)


def test_averaged_shard_gradients_equal_the_combined_batch_gradient():
    result = parallel.run(2, "grad-check", batch_size=64, seed=3)
    # the reference, computed here in one process with no torch.distributed at all
    X, y = parallel.fixed_batch(64, seed=3)
    expected = parallel.batch_gradient(parallel.make_model(seed=3), X, y)
    averaged = torch.tensor(result["grad_avg"], dtype=torch.float64)
    shards = torch.tensor(result["shard_grads"], dtype=torch.float64)

    assert result["world_size"] == 2 and result["shard_size"] == 32
    assert averaged.shape == expected.shape == (result["num_parameters"],)
    assert (averaged - expected).abs().max() < 1e-14  # float64 rounding, nothing more
    assert result["max_abs_diff"] < 1e-14
    assert result["max_diff_between_workers"] == 0.0  # every worker holds the same average
    # each worker's own gradient is far from the batch's: the averaging did the work
    assert shards.shape == (2, len(expected))
    assert ((shards - expected).abs().max(dim=1).values > 1e-3).all()
    assert torch.allclose(shards.mean(dim=0), expected, rtol=0, atol=1e-14)


def test_data_parallel_training_matches_one_process():
    options = dict(num_epochs=3, batch_size=64, lr=0.2, seed=1)
    parallel_run = parallel.run(2, "train", **options)
    single = parallel.train(**options)  # this process, the whole batch of 64 each step

    assert parallel_run["world_size"] == 2 and single["world_size"] == 1
    assert parallel_run["shard_size"] == 32 and single["shard_size"] == 64
    p2, p1 = (torch.tensor(r["params"], dtype=torch.float64) for r in (parallel_run, single))
    assert (p2 - p1).abs().max() < 1e-12
    assert parallel_run["epoch_loss"] == pytest.approx(single["epoch_loss"], rel=1e-12)
    assert single["epoch_loss"][-1] < 0.5 * single["epoch_loss"][0]  # it did learn


def test_bad_requests_fail_before_any_process_starts():
    with pytest.raises(ValueError, match="not divisible"):
        parallel.run(2, "grad-check", batch_size=63)
    with pytest.raises(TypeError, match="unknown learning_rate"):
        parallel.run(2, "train", learning_rate=0.1)
    with pytest.raises(ValueError, match="unknown task"):
        parallel.run(2, "evaluate")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(RuntimeError, match="already in use"):
            parallel.run(2, "grad-check", port=busy.getsockname()[1])


def test_a_failing_worker_is_reported_with_its_output():
    # a bad option value reaches the workers' argument parser, which exits with an error
    with pytest.raises(RuntimeError, match=r"(?s)worker \d of 2 failed.*invalid float value"):
        parallel.run(2, "train", lr="fast", num_epochs=1)


def test_a_port_taken_between_choosing_and_listening_is_replaced(monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports = iter([busy.getsockname()[1]])  # the first "free" port is taken: worker 0 fails
        free_port = parallel.free_port
        monkeypatch.setattr(parallel, "free_port", lambda: next(ports, None) or free_port())
        result = parallel.run(1, "grad-check", batch_size=8)
    assert result["world_size"] == 1 and result["max_abs_diff"] == 0.0
    assert next(ports, None) is None  # the busy port was tried first


def test_step_times_split_compute_from_communication():
    alone = parallel.step_times(widths="4,32", batch_size=16, num_steps=2)
    assert alone["world_size"] == 1 and alone["shard_size"] == 16
    assert [s["hidden"] for s in alone["sizes"]] == [4, 32]
    assert [s["num_parameters"] for s in alone["sizes"]] == [30 * 4 + 4 + 4 + 1,
                                                            30 * 32 + 32 + 32 + 1]
    for s in alone["sizes"]:
        assert s["compute"] > 0 and s["step"] > 0
        assert s["communicate"] < 1e-3  # one process: nothing to send
    # two workers: the step-times task, here as part of a grad-check launch
    two = parallel.run(2, "grad-check", batch_size=16, timing_widths="8")["step_times"]
    assert two["world_size"] == 2 and two["shard_size"] == 448 // 2
    (size,) = two["sizes"]
    assert size["num_parameters"] == 30 * 8 + 8 + 8 + 1
    assert size["communicate"] > 0 and size["step"] >= size["communicate"]
