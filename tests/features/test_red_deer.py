"""Hand-written niapy algorithms: red deer phases stay in bounds, ERD tinkering, EO pool, determinism, plot."""
import numpy as np
import pytest
from niapy.problems import Problem
from niapy.task import Task

from adrcs.features.equilibrium import EquilibriumOptimizer
from adrcs.features.red_deer import EnhancedRedDeer, RedDeer, evaluate_all
from adrcs.report.selection import plot_convergence

LOWER, UPPER, DIM = -2.0, 3.0, 6  # asymmetric bounds: catches steps that forget LB


class ShiftedSphere(Problem):
    def __init__(self, dimension=DIM):
        super().__init__(dimension, LOWER, UPPER)

    def _evaluate(self, x):
        return float(np.sum((x - 1.0) ** 2))


def make_task(max_iters=20):
    return Task(problem=ShiftedSphere(), max_iters=max_iters)


def within(x):
    return bool(np.all((x >= LOWER) & (x <= UPPER)))


def random_herd(algo, task, n):
    pop = algo.uniform(task.lower, task.upper, (n, task.dimension))
    return pop, evaluate_all(task, pop)


def test_group_sizes():
    assert RedDeer(population_size=10).group_sizes() == (2, 1, 8)
    assert RedDeer(population_size=40).group_sizes() == (10, 4, 30)
    with pytest.raises(ValueError):
        RedDeer(population_size=2).group_sizes()


def test_red_deer_phases_stay_in_bounds():
    # a huge mating step pushes offspring far outside the box before `task.repair`
    algo = RedDeer(population_size=40, mating_step=3.0, seed=0)
    task = make_task()
    n_male, n_com, n_hind = algo.group_sizes()
    pop, fit = random_herd(algo, task, 40)
    order = np.argsort(fit)
    pop, fit = pop[order], fit[order]
    males, males_f = algo.roar(task, pop[:n_male], fit[:n_male])
    assert within(males) and np.all(males_f <= fit[:n_male])  # roaring is greedy
    coms, coms_f = algo.fight(task, males[:n_com], males_f[:n_com], males[n_com:], males_f[n_com:])
    assert within(coms) and np.all(coms_f <= males_f[:n_com])  # commander = best of the four
    harem = algo.form_harems(coms_f, n_hind)
    assert harem.shape == (n_hind,) and set(harem) <= set(range(n_com))
    assert np.all(np.bincount(harem, minlength=n_com) >= 1)  # every commander keeps a hind
    kids, kids_f = algo.mate(task, coms, males[n_com:], pop[n_male:], harem)
    assert len(kids) > 0 and within(kids) and np.allclose(kids_f, evaluate_all(task, kids))
    nxt, nxt_f = algo.next_generation(coms, coms_f, np.concatenate([pop[n_male:], kids]),
                                      np.concatenate([fit[n_male:], kids_f]))
    assert nxt.shape == (40, DIM) and within(nxt) and np.array_equal(nxt[:n_com], coms)


def test_harem_sizes_follow_commander_power():
    algo = RedDeer(population_size=40, seed=0)
    sizes = np.bincount(algo.form_harems(np.array([1.0, 2.0, 5.0, 9.0]), 30), minlength=4)
    assert sizes.sum() == 30 and sizes[0] > sizes[1] > sizes[2] >= sizes[3] == 1


@pytest.mark.parametrize("cls", [RedDeer, EnhancedRedDeer, EquilibriumOptimizer])
def test_runs_improve_and_record_convergence(cls):
    task = make_task(max_iters=20)
    algo = cls(population_size=20, seed=3)
    pop, fit, _ = algo.init_population(make_task())  # same seed -> same initial population
    best_x, best_f = cls(population_size=20, seed=3).run(task)
    assert within(best_x) and best_f < fit.min()
    conv = task.convergence_data()[1]
    assert len(conv) == 20 and np.all(np.diff(conv) <= 0) and conv[-1] == pytest.approx(best_f)


@pytest.mark.parametrize("cls", [RedDeer, EnhancedRedDeer, EquilibriumOptimizer])
def test_same_seed_same_result(cls):
    runs = []
    for seed in (5, 5, 6):
        task = make_task(max_iters=10)
        x, f = cls(population_size=16, seed=seed).run(task)
        runs.append((x, f, task.convergence_data()[1], task.evals))
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert np.array_equal(runs[0][2], runs[1][2]) and runs[0][3] == runs[1][3]
    assert not np.array_equal(runs[0][0], runs[2][0])


def test_tinkering_reassigns_worst_harems():
    algo = EnhancedRedDeer(population_size=40, seed=0, tinker_share=0.5)
    task = make_task()
    hinds, hinds_f = random_herd(algo, task, 12)
    harem = np.repeat([0, 1, 2, 3], 3)
    hinds_f = hinds_f.copy()
    hinds_f[harem == 3] += 100.0  # harems 3 and 2 are the worst by mean hind cost
    hinds_f[harem == 2] += 50.0
    coms_f = np.array([0.1, 0.2, 0.3, 0.4])
    best_x = np.ones(DIM)
    new_x, new_f, new_harem = algo.tinker(task, hinds, hinds_f, harem, coms_f, best_x)
    moved = np.isin(harem, [2, 3])
    assert set(new_harem[moved]) == {0, 1} and np.array_equal(new_harem[~moved], harem[~moved])
    assert algo.tinker_count == 6 and algo.tinker_events == 1
    assert within(new_x) and np.all(new_f <= hinds_f)  # pulled toward the best, kept only if better
    assert algo.harem_diversity(hinds_f, harem, hinds_f) > algo.harem_diversity(new_f, new_harem, new_f)


def test_tinkering_fires_in_a_run_and_only_when_probable():
    counts = {}
    for p in (0.0, 1.0):
        algo = EnhancedRedDeer(population_size=40, p_min=p, p_max=p, delta=0.0, seed=1)
        algo.run(make_task(max_iters=8))
        counts[p] = (algo.tinker_events, algo.tinker_count)
    assert counts[0.0] == (0, 0)
    assert counts[1.0][0] >= 1 and counts[1.0][1] > 0
    assert not hasattr(RedDeer(), "tinker_count")


def test_tinker_probability_grows_over_the_run():
    algo = EnhancedRedDeer(p_min=0.2, p_max=0.9)
    task = make_task(max_iters=10)
    p0 = algo.tinker_probability(task)
    task.iters = 10
    assert p0 == pytest.approx(0.2) and algo.tinker_probability(task) == pytest.approx(0.9)


def test_equilibrium_pool_has_five_members():
    algo = EquilibriumOptimizer(population_size=10, seed=0)
    task = make_task()
    pop, fit, params = algo.init_population(task)
    pool = algo.equilibrium_pool(params["cand_x"])
    assert pool.shape == (5, DIM)
    np.testing.assert_allclose(pool[4], pool[:4].mean(axis=0))
    np.testing.assert_allclose(params["cand_f"], np.sort(fit)[:4])
    new, new_f, _, _, params2 = algo.run_iteration(task, pop, fit, pop[np.argmin(fit)], fit.min(), **params)
    assert within(new) and np.all(new_f <= fit)  # memory saving
    assert params2["cand_x"].shape == (4, DIM) and np.all(params2["cand_f"] <= params["cand_f"])


def test_equilibrium_tiny_population_repeats_pool_members():
    algo = EquilibriumOptimizer(population_size=2, seed=0)
    _, _, params = algo.init_population(make_task())
    assert algo.equilibrium_pool(params["cand_x"]).shape == (5, DIM)


def test_plot_convergence_writes_png(tmp_path):
    out = plot_convergence({"erd": [0.8, 0.85, 0.9], "ga": [0.8, 0.82, 0.82], "empty": []},
                           tmp_path / "sub" / "conv.png", title="test")
    assert out.exists() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_convergence({}, tmp_path / "none.png").exists()
