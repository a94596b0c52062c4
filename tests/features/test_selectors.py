"""niapy-backed selectors: valid masks, fitness improves over the initial population, history."""
import numpy as np
import pytest

from adrcs.features.selectors import SELECTORS, MetaheuristicSelector, algorithm_class, make_algorithm, to_mask


def problem(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, 24))
    X[:, :3] += 3.0 * np.eye(3)[y]
    return X, y


@pytest.mark.slow
@pytest.mark.parametrize("name", SELECTORS)
def test_selector_returns_mask_and_improves(name):
    X, y = problem()
    sel = MetaheuristicSelector(name, population=10, iterations=15, w=0.9, seed=1).fit(X, y)
    assert sel.support_.dtype == bool and sel.support_.shape == (24,) and sel.support_.any()
    assert sel.transform(X).shape == (len(X), int(sel.support_.sum()))
    assert sel.fitness_ > sel.initial_fitness_
    assert len(sel.history_) == 15 and np.all(np.diff(sel.history_) >= 0)
    assert sel.history_[-1] == pytest.approx(sel.fitness_)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["erd", "rd", "eo", "sca"])
def test_selector_same_seed_same_result(name):
    X, y = problem(n=120)
    a, b = (MetaheuristicSelector(name, population=8, iterations=5, w=0.9, seed=2).fit(X, y) for _ in range(2))
    np.testing.assert_array_equal(a.support_, b.support_)
    assert a.history_ == b.history_


def test_make_algorithm_registry():
    assert SELECTORS == ("erd", "rd", "ga", "pso", "gwo", "sca", "eo")
    for name in SELECTORS:
        algo = make_algorithm(name, population=7, seed=0)
        assert algo.population_size == 7 and isinstance(algo, algorithm_class(name))
    assert make_algorithm("erd", 12, 0, gamma=0.5).gamma == 0.5


def test_sine_cosine_moves():
    """niapy 2.7.1's SCA computes r1 = 0 and never leaves its initial population; ours converges."""
    from niapy.task import Task

    task = Task("sphere", dimension=5, lower=-5.0, upper=5.0, max_iters=30)
    make_algorithm("sca", population=10, seed=1).run(task)
    conv = task.convergence_data()[1]
    assert conv[-1] < 0.5 * conv[0]


def test_transfer_and_unknown_name():
    np.testing.assert_array_equal(to_mask(np.array([0.2, 0.6, 0.5])), [False, True, False])
    with pytest.raises(ValueError, match="unknown selector"):
        MetaheuristicSelector("abc").fit(*problem(n=30))
