"""The BLAS thread policy (xpnet/threads.py): what it picks for given sizes, cores and step
times, and that fit really runs under it and restores the library's setting afterwards.

Thread counts are read back with threadpoolctl's own introspection (``threadpool_info``),
never from xpnet's bookkeeping. Step times for the policy's decisions come from a scripted
clock (the tuner takes its clock as an argument), so every decision here is exact; the
tests that train for real assert only what holds whatever the machine's load.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import xpnet
from xpnet import threads as T
from xpnet.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Reshape
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.optim import Adam
from xpnet.threads import ThreadTuner
from xpnet.training import NonFiniteError, fit


def blas_threads() -> int:
    """The BLAS pool's size as threadpoolctl reads it from the library."""
    counts = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    assert len(counts) == 1, threadpool_info()
    return counts.pop()


@pytest.fixture
def pool_of_two() -> Iterator[None]:
    """A BLAS pool of 2 threads for the test, whatever OPENBLAS_NUM_THREADS says (CI sets 1)."""
    if not [i for i in threadpool_info() if i["user_api"] == "blas"]:
        pytest.skip("no BLAS library that threadpoolctl can steer is loaded")
    with threadpool_limits(2, user_api="blas"):
        assert blas_threads() == 2
        yield


# ------------------------------------------------------------------------ arguments
@pytest.mark.parametrize("good", ["auto", None, 1, 3, np.int64(2)])
def test_check_threads_accepts(good: object) -> None:
    assert T.check_threads(good) == good


@pytest.mark.parametrize(
    ("bad", "error"),
    [("fast", ValueError), (0, ValueError), (-2, ValueError), (1.5, TypeError),
     (True, TypeError), ("AUTO ", ValueError)],
)
def test_check_threads_names_the_bad_value(bad: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"threads must be .*got " + repr(bad).replace("(", r"\(")
                       .replace(")", r"\)").replace(".", r"\.")):
        T.check_threads(bad)


def test_parse_threads() -> None:
    assert T.parse_threads("auto") == "auto" and T.parse_threads("None") is None
    assert T.parse_threads("4") == 4
    for bad in ("0", "-1", "two", "1.5", ""):
        with pytest.raises(ValueError, match=repr(bad)):
            T.parse_threads(bad)


# ------------------------------------------------------------------------ cores
@pytest.mark.parametrize(
    ("text", "cpus"),
    [("200000 100000\n", 2), ("150000 100000", 2), ("50000 100000", 1), ("max 100000", None),
     ("garbage", None), ("", None), ("0 100000", None)],
)
def test_cgroup_cpu_limit_reads_a_cpu_max_file(tmp_path: Path, text: str, cpus: int | None) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(text)
    assert T.cgroup_cpu_limit(path) == cpus


def test_cgroup_cpu_limit_without_the_file(tmp_path: Path) -> None:
    assert T.cgroup_cpu_limit(tmp_path / "absent") is None


def test_usable_cpus_is_the_affinity_mask_within_the_quota() -> None:
    n = T.usable_cpus()
    affinity = len(__import__("os").sched_getaffinity(0))
    quota = T.cgroup_cpu_limit()
    assert n == (min(affinity, quota) if quota else affinity)


# ------------------------------------------------------------------------ sizes
def test_largest_matmul_is_the_biggest_weight_product_of_a_step() -> None:
    net = xpnet.Sequential([Dense(784, 400), ReLU(), Dropout(0.2), Dense(400, 100)], seed=0)
    assert T.largest_matmul(net.layers, 256) == 256 * 784 * 400
    assert T.largest_matmul([ReLU(), Dropout(0.5)], 256) == 0


def test_largest_matmul_counts_a_convolutions_output_pixels() -> None:
    # Conv2D's forward is (N Ho Wo, C kh kw) @ (C kh kw, O): the weights' size times Ho Wo
    layers = [Reshape((1, 28, 28)), Conv2D(1, 16, 3, padding=1), ReLU(), MaxPool2D(2),
              Conv2D(16, 32, 3, padding=1), MaxPool2D(2), Flatten(), Dense(32 * 7 * 7, 10)]
    net = xpnet.Sequential(layers, seed=0)
    second = 128 * 32 * 16 * 9 * 14 * 14
    assert T.largest_matmul(net.layers, 128, net.input_shape) == second
    assert layers[4].matmul_macs((16, 14, 14)) == 32 * 16 * 9 * 14 * 14
    assert layers[4].matmul_macs(None) == 32 * 16 * 9  # size unknown: per output pixel
    assert layers[7].matmul_macs((1568,)) == 1568 * 10
    # the BLAS-thread policy now sees a conv net big enough to split
    assert T.thread_cap(second, pool=8, cpus=8) > 1


@pytest.mark.parametrize(
    ("macs", "pool", "cpus", "cap"),
    [
        (256 * 784 * 400, 2, 2, 2),        # the MNIST MLP on 2 cores: worth timing 1 and 2
        (256 * 784 * 400, 16, 4, 4),       # affinity / quota below the pool size
        (256 * 784 * 400, 1, 16, 1),       # OPENBLAS_NUM_THREADS=1: nothing to choose
        (10 * 16 * 16, 8, 8, 1),           # a toy model: never split
        (3 * T.MIN_MACS_PER_THREAD, 8, 8, 3),
        (T.MIN_MACS_PER_THREAD - 1, 8, 8, 1),
    ],
)
def test_thread_cap(macs: int, pool: int, cpus: int, cap: int) -> None:
    assert T.thread_cap(macs, pool, cpus) == cap


@pytest.mark.parametrize(
    ("cap", "counts"), [(1, [1]), (2, [1, 2]), (3, [1, 2, 3]), (6, [1, 2, 4, 6]), (8, [1, 2, 4, 8])]
)
def test_candidates(cap: int, counts: list[int]) -> None:
    assert T.candidates(cap) == counts


# ------------------------------------------------------------------------ decisions
def test_choose_takes_the_fewest_threads_within_tolerance() -> None:
    assert T.choose({1: [10.0, 11.0, 10.0], 2: [6.0, 6.5, 6.0]}) == 2
    assert T.choose({1: [10.0, 10.0, 10.0], 2: [9.7, 9.8, 9.9]}) == 1   # 3% faster: not worth it
    assert T.choose({1: [5.0, 5.0, 5.0], 2: [30.0, 31.0, 29.0]}) == 1   # a busy machine
    assert T.choose({1: [9.0], 2: [5.0], 4: [4.9]}) == 2
    with pytest.raises(ValueError, match="no timed steps"):
        T.choose({1: []})


def test_clearly_slower_rules_out_only_what_no_noise_explains() -> None:
    assert T.clearly_slower({1: [5.0], 2: [40.0]}) == {2}
    assert T.clearly_slower({1: [5.0, 9.0], 2: [15.0]}) == set()      # 15 < 2 * 9
    assert T.clearly_slower({1: [8.0], 2: [4.0], 4: [20.0]}) == {4}
    assert T.clearly_slower({1: [5.0]}) == set()


def test_hold_seconds_bounds_the_time_lost_to_probing() -> None:
    samples = {1: [0.010, 0.010, 0.010], 2: [0.060]}
    hold = T.hold_seconds(samples, 1)
    assert hold == pytest.approx(0.050 / T.OVERHEAD)
    tie = {1: [0.010] * 3, 2: [0.010] * 3}
    assert T.hold_seconds(tie, 1) == pytest.approx(T.MIN_HOLD_STEPS * 0.010)
    assert T.hold_seconds({1: [0.01], 2: [1e6]}, 1) == T.MAX_HOLD_S


def test_describe_epochs() -> None:
    assert T.describe_epochs([2.0, 2.0], "auto") == " (BLAS threads: 2, auto)"
    assert T.describe_epochs([1.0] * 3 + [2.0], "auto") == (
        " (BLAS threads, auto: 1 in 3 epochs, 2 in 1 epoch)"
    )
    assert T.describe_epochs([4.0], 4) == " (BLAS threads: 4, as asked)"
    assert T.describe_epochs(None, None) == "" and T.describe_epochs([], "auto") == ""


# ------------------------------------------------------------------------ the tuner
class Machine:
    """A scripted clock: each step takes ``step_s[threads in force]`` seconds."""

    def __init__(self, step_s: dict[int, float]) -> None:
        self.step_s = step_s
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def run(self, tuner: ThreadTuner, steps: int) -> list[int]:
        """Run ``steps`` steps; return the BLAS pool size (read back) each one ran with."""
        used = []
        for _ in range(steps):
            used.append(blas_threads())
            assert used[-1] == tuner.current
            self.now += self.step_s[used[-1]]
            tuner.on_batch_end()
        return used


MLP_MACS = 256 * 784 * 400


def idle() -> float:
    """A load average of an idle machine but for this training run."""
    return 1.0


def test_auto_keeps_two_threads_where_they_are_faster(pool_of_two: None) -> None:
    m = Machine({1: 0.006, 2: 0.004})
    with ThreadTuner("auto", macs=MLP_MACS, cpus=2, clock=m, load=idle) as tuner:
        tuner.on_epoch_begin(0)
        used = m.run(tuner, 20)
        assert tuner.cap == 2
        assert used[:8] == [1, 1, 2, 1, 2, 1, 2, 2]   # untimed first step, then 3 rounds
        assert tuner.chosen[0][0] == 2 and tuner.chosen[0][1] == {1: 0.006, 2: 0.004}
        assert used[8:20] == [2] * 12
        assert tuner.epoch_threads() == 2
        assert "auto: 2 (median step time with 1: 6.0 ms, 2: 4.0 ms)" in tuner.describe()
    assert blas_threads() == 2


def test_auto_drops_to_one_thread_on_a_busy_machine_after_one_slow_step(
    pool_of_two: None,
) -> None:
    m = Machine({1: 0.010, 2: 0.060})
    with ThreadTuner("auto", macs=MLP_MACS, cpus=2, clock=m, load=idle) as tuner:
        tuner.on_epoch_begin(0)
        used = m.run(tuner, 120)
        # One 6x slower step with 2 threads is decisive: no second and third round of it.
        assert used[:4] == [1, 1, 2, 1] and used[3:100] == [1] * 97
        assert tuner.chosen[0][0] == 1
        # The next probe comes once the lost 50 ms is OVERHEAD of the time since: 1 s, that
        # is 100 steps of 10 ms (then one probe step with the count in force).
        assert T.hold_seconds({1: [0.010], 2: [0.060]}, 1) == pytest.approx(1.0)
        assert 3 + 100 <= used.index(2, 4) <= 3 + 100 + 2
    assert blas_threads() == 2   # restored


def test_auto_probes_again_when_the_load_rises_on_several_threads(
    pool_of_two: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(T, "MIN_HOLD_STEPS", 1000)  # so that only DRIFT can call a probe
    m = Machine({1: 0.0045, 2: 0.004})
    with ThreadTuner("auto", macs=MLP_MACS, cpus=2, clock=m, load=idle) as tuner:
        tuner.on_epoch_begin(0)
        assert m.run(tuner, 17)[7:] == [2] * 10
        m.step_s = {1: 0.005, 2: 0.050}  # another process takes a core
        used = m.run(tuner, 20)
        # Once most of the last DRIFT_STEPS steps are slow, their median is 12x that of the
        # first ones: a probe (one more step with 2 threads); one step of each count is
        # decisive: back to 1 thread.
        slow = T.DRIFT_STEPS // 2 + 1
        assert used[: slow + 1] == [2] * (slow + 1) and used[slow + 1 :] == [1] * (19 - slow)
        assert [best for best, _ in tuner.chosen] == [2, 1]


def test_auto_does_not_probe_when_no_other_count_could_win(
    pool_of_two: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(T, "MIN_HOLD_STEPS", 1000)
    m = Machine({1: 0.010, 2: 0.060})
    with ThreadTuner("auto", macs=MLP_MACS, cpus=2, clock=m, load=idle) as tuner:
        tuner.on_epoch_begin(0)
        m.run(tuner, 20)
        m.step_s = {1: 0.030, 2: 0.200}  # slower still on 1 thread: more threads can't help
        assert m.run(tuner, 40) == [1] * 40 and len(tuner.chosen) == 1


def test_probes_never_cost_more_than_the_overhead_budget(
    pool_of_two: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(T, "MAX_HOLD_S", 0.05)  # the hold alone would probe every 5 steps
    m = Machine({1: 0.010, 2: 0.060})
    with ThreadTuner("auto", macs=MLP_MACS, cpus=2, clock=m, load=idle) as tuner:
        tuner.on_epoch_begin(0)
        used = m.run(tuner, 300)
    lost = 0.050 * used.count(2)  # each 2-thread step loses 50 ms against 1 thread
    assert used.count(2) >= 2
    assert lost <= T.OVERHEAD * m.now + 0.050  # within budget, give or take the last probe


def test_free_cpus() -> None:
    assert T.free_cpus(2, None) == 2.0
    assert T.free_cpus(2, 1.0) == 2.0      # only this run: both cores free
    assert T.free_cpus(2, 2.1) == pytest.approx(0.9)   # one other busy process
    assert T.free_cpus(16, 5.0) == 12.0
    assert T.free_cpus(2, 9.0) == 0.0
    assert T.load_average() is None or T.load_average() >= 0.0


def test_auto_tries_no_more_threads_than_the_load_leaves_cores_for(pool_of_two: None) -> None:
    load = [3.0]  # two other busy processes on a 2-core machine
    m = Machine({1: 0.010, 2: 0.500})
    with ThreadTuner("auto", macs=MLP_MACS, cpus=2, clock=m, load=lambda: load[0]) as tuner:
        tuner.on_epoch_begin(0)
        used = m.run(tuner, 150)  # 1.5 s: the load is looked at again every RECHECK_S
        assert used == [1] * 150 and tuner.chosen == []
        load[0] = 1.0  # they stopped: the next look finds both cores free, and a probe
        m.step_s = {1: 0.010, 2: 0.004}
        used = m.run(tuner, 120)
        assert 2 in used and tuner.current == 2 and tuner.chosen[-1][0] == 2
    with threadpool_limits(16, user_api="blas"), ThreadTuner(
        "auto", macs=MLP_MACS, cpus=16, clock=m, load=lambda: 13.0
    ) as tuner:
        assert tuner.cap == 9  # the size limit: 80M multiply-adds, 8M a thread at least
        assert tuner._queue == [1, 2, 4] * T.ROUNDS  # 4 cores left free: 8 and 9 not tried


def test_auto_untimed_steps_are_timed_again(pool_of_two: None) -> None:
    m = Machine({1: 0.006, 2: 0.004})
    with ThreadTuner("auto", macs=MLP_MACS, cpus=2, clock=m, load=idle) as tuner:
        tuner.on_epoch_begin(0)
        for _ in range(3):  # partial batches: not comparable, the same count runs again
            m.now += m.step_s[tuner.current or 1]
            tuner.on_batch_end(full=False)
        assert tuner.current == 1 and tuner.samples == {}


def test_auto_with_one_core_or_small_matmuls_is_one_thread_and_never_probes(
    pool_of_two: None,
) -> None:
    for macs, cpus in ((MLP_MACS, 1), (1000, 8)):
        m = Machine({1: 0.01, 2: 0.001})
        with ThreadTuner("auto", macs=macs, cpus=cpus, clock=m) as tuner:
            tuner.on_epoch_begin(0)
            assert m.run(tuner, 30) == [1] * 30 and tuner.chosen == []
            assert "matmuls too small to split, or 1 usable core" in tuner.describe()
        assert blas_threads() == 2


def test_fixed_and_none_settings(pool_of_two: None) -> None:
    m = Machine({1: 0.01, 2: 0.01, 3: 0.01})
    with ThreadTuner(3, macs=MLP_MACS, clock=m) as tuner:
        assert m.run(tuner, 5) == [3] * 5 and tuner.describe() == "BLAS threads: 3 (as asked)"
    with ThreadTuner(None, macs=MLP_MACS, clock=m) as tuner:
        assert tuner.current is None and blas_threads() == 2
        tuner.on_batch_end()
        assert tuner.epoch_threads() is None
    with ThreadTuner("auto", macs=MLP_MACS, host=False, clock=m) as tuner:  # CuPy: hands off
        assert tuner.current is None and blas_threads() == 2
    assert blas_threads() == 2


# ------------------------------------------------------------------------ inside fit
def _model(width: int = 16) -> xpnet.Sequential:
    net = xpnet.Sequential([Dense(20, width), ReLU(), Dense(width, 3)], seed=0)
    return net.compile(SoftmaxCrossEntropy(), Adam(0.01))


def _data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 20)).astype(np.float32), rng.integers(0, 3, size=n)


@pytest.mark.parametrize(("threads", "inside"), [(1, 1), (3, 3), (None, 2), ("auto", 1)])
def test_fit_runs_under_the_setting_and_restores_the_pool(
    pool_of_two: None, threads: T.Threads, inside: int
) -> None:
    seen: list[int] = []
    X, y = _data()
    hist = fit(_model(), X, y, epochs=3, batch_size=16, seed=0, threads=threads,
               on_epoch_end=lambda epoch, logs: seen.append(blas_threads()))
    assert seen == [inside] * 3
    assert blas_threads() == 2
    if threads is None:
        assert "threads" not in hist
    else:
        assert hist["threads"] == [float(inside)] * 3


def test_sequential_fit_defaults_to_auto(pool_of_two: None) -> None:
    seen: list[int] = []
    X, y = _data()
    hist = _model().fit(X, y, epochs=2, batch_size=16,
                        on_epoch_end=lambda epoch, logs: seen.append(blas_threads()))
    assert seen == [1, 1] and hist["threads"] == [1.0, 1.0]  # a toy model: 1 thread
    assert blas_threads() == 2


def test_fit_restores_the_pool_when_training_fails(pool_of_two: None) -> None:
    X, y = _data()
    X[:] = 3e38  # finite float32 input that overflows the first matmul: NonFiniteError
    net = _model()
    with pytest.raises(NonFiniteError), np.errstate(over="ignore", invalid="ignore"):
        fit(net, X, y, epochs=1, batch_size=16, threads=1)
    assert blas_threads() == 2

    def stop(epoch: int, logs: dict[str, float]) -> None:
        assert blas_threads() == 3
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        fit(_model(), *_data(), epochs=2, batch_size=16, threads=3, on_epoch_end=stop)
    assert blas_threads() == 2


def test_fit_rejects_a_bad_threads_value_before_training() -> None:
    with pytest.raises(ValueError, match="threads must be 'auto', a positive integer or None, "
                       "got 'many'"):
        fit(_model(), *_data(), epochs=1, threads="many")  # type: ignore[arg-type]


def test_fixed_threads_give_bit_identical_runs(pool_of_two: None) -> None:
    X, y = _data(96)
    a, b = _model(64), _model(64)
    fit(a, X, y, epochs=2, batch_size=32, seed=1, threads=2)
    fit(b, X, y, epochs=2, batch_size=32, seed=1, threads=2)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_auto_on_the_mnist_mlp_stays_within_its_cap(pool_of_two: None) -> None:
    """The real policy on the real model: whatever the load, only 1 or 2 threads, a count
    logged per epoch, and the pool restored. (Which count wins depends on the machine.)"""
    rng = np.random.default_rng(0)
    X = rng.random((1024, 784), dtype=np.float32)
    y = rng.integers(0, 10, size=1024)
    net = xpnet.Sequential([Dense(784, 400), ReLU(), Dropout(0.2), Dense(400, 100), ReLU(),
                            Dense(100, 10)], seed=0)
    net.compile(SoftmaxCrossEntropy(), Adam(0.005))
    seen: list[int] = []
    hist = fit(net, X, y, epochs=2, batch_size=256, seed=0,
               on_epoch_end=lambda epoch, logs: seen.append(blas_threads()))
    assert set(seen) <= {1, 2} and set(hist["threads"]) <= {1.0, 2.0}
    assert len(hist["threads"]) == 2
    assert blas_threads() == 2
