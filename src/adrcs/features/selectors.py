"""Metaheuristic feature selection as scikit-learn-style selectors (`fit`, `transform`, `support_`).

Positions live in [0, 1]^F and a feature is selected where its coordinate is > 0.5 (threshold
transfer). The fitness is `SubsetFitness` (inner-split KNN accuracy and feature ratio). GA, PSO and
Grey Wolf come from niapy; Sine-Cosine is niapy's with its r1 schedule fixed (see `_sine_cosine`); the red
deer variants (`adrcs.features.red_deer`) and EO (`adrcs.features.equilibrium`) are written on the same niapy
`Algorithm` interface, so every selector runs through `MetaheuristicSelector`.
"""
from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from adrcs.features.fitness import SubsetFitness

NIAPY_ALGORITHMS = {"ga": "GeneticAlgorithm", "pso": "ParticleSwarmAlgorithm", "gwo": "GreyWolfOptimizer",
                    "sca": "SineCosineAlgorithm"}  # niapy class names (sca is used through `_sine_cosine`)
OWN_ALGORITHMS = {"erd": "adrcs.features.red_deer:EnhancedRedDeer", "rd": "adrcs.features.red_deer:RedDeer",
                  "eo": "adrcs.features.equilibrium:EquilibriumOptimizer"}  # module:class, imported when used
SELECTORS = ("erd", "rd", "ga", "pso", "gwo", "sca", "eo")


def to_mask(position: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binary transfer: a continuous position in [0, 1]^F -> boolean feature mask."""
    return np.asarray(position) > threshold


@cache
def _sine_cosine() -> type:
    """niapy's SineCosineAlgorithm with the paper's r1 = a - t * a / T (Mirjalili 2016, eq. 3.4).

    niapy 2.7.1 computes r1 = a - (t + 1) * (a / (t + 1)), which is always 0, so x + r1 * (...) never moves and
    SCA only ever reports its initial population (no parameter can fix that). Here r1 decays linearly from `a`
    to 0 over the iterations and r2, r3, r4 are drawn per particle and dimension, as in the paper.
    """
    from niapy.algorithms.basic import SineCosineAlgorithm

    from adrcs.features.red_deer import evaluate_all, search_progress

    class SineCosine(SineCosineAlgorithm):
        """Sine Cosine Algorithm (niapy's, with the r1 schedule fixed); paper default a = 2."""

        def __init__(self, population_size: int = 25, a: float = 2, r_min: float = 0, r_max: float = 2,
                     *args: Any, **kwargs: Any) -> None:
            super().__init__(population_size, a, r_min, r_max, *args, **kwargs)

        def run_iteration(self, task, population, population_fitness, best_x, best_fitness, **params):
            r1 = self.a * (1 - search_progress(task))  # eq. 3.4
            shape = population.shape
            r2 = self.uniform(0, 2 * np.pi, shape)
            r3 = self.uniform(self.r_min, self.r_max, shape)
            r4 = self.random(shape)
            move = np.where(r4 < 0.5, np.sin(r2), np.cos(r2)) * np.abs(r3 * best_x - population)  # eq. 3.3
            population = np.array([task.repair(x, rng=self.rng) for x in population + r1 * move])
            population_fitness = evaluate_all(task, population)
            best_x, best_fitness = self.get_best(population, population_fitness, best_x, best_fitness)
            return population, population_fitness, best_x, best_fitness, {}

    return SineCosine


def algorithm_class(name: str) -> type:
    """The niapy `Algorithm` subclass behind a selector's short name (one of `SELECTORS`)."""
    import importlib

    if name == "sca":
        return _sine_cosine()
    if name in NIAPY_ALGORITHMS:
        import niapy.algorithms.basic as basic

        return getattr(basic, NIAPY_ALGORITHMS[name])
    if name in OWN_ALGORITHMS:
        module, cls = OWN_ALGORITHMS[name].split(":")
        return getattr(importlib.import_module(module), cls)
    raise ValueError(f"unknown selector {name!r}; known: {sorted(SELECTORS)}")


def make_algorithm(name: str, population: int, seed: int, **kwargs: Any):
    """A niapy-interface algorithm by short name (erd, rd, ga, pso, gwo, sca, eo)."""
    return algorithm_class(name)(population_size=population, seed=seed, **kwargs)


class MetaheuristicSelector:
    """Search a feature mask maximising `SubsetFitness`; `history_` is the best fitness per iteration."""

    def __init__(self, algorithm: str = "ga", population: int = 20, iterations: int = 30, w: float = 0.99, k: int = 5,
                 threshold: float = 0.5, seed: int = 0, algorithm_args: dict[str, Any] | None = None) -> None:
        self.algorithm, self.population, self.iterations = algorithm, population, iterations
        self.w, self.k, self.threshold, self.seed = w, k, threshold, seed
        self.algorithm_args = algorithm_args or {}

    def fit(self, X: np.ndarray, y: np.ndarray) -> "MetaheuristicSelector":
        from niapy.problems import Problem
        from niapy.task import Task

        fitness = SubsetFitness(X, y, w=self.w, k=self.k, seed=self.seed)
        evals: list[float] = []
        threshold = self.threshold

        class _Subset(Problem):
            def __init__(self, dimension: int) -> None:
                super().__init__(dimension, 0.0, 1.0)

            def _evaluate(self, x: np.ndarray) -> float:
                f = float(fitness(to_mask(x, threshold)[None])[0])
                evals.append(f)
                return -f  # niapy minimises

        task = Task(problem=_Subset(X.shape[1]), max_iters=self.iterations, enable_logging=False)
        algo = make_algorithm(self.algorithm, self.population, self.seed, **self.algorithm_args)
        best_x, best_f = algo.run(task)
        self.support_ = to_mask(best_x, threshold)
        self.fitness_ = -float(best_f)
        self.initial_fitness_ = max(evals[:self.population]) if evals else float("nan")
        _, conv = task.convergence_data(x_axis="iters")
        self.history_ = [-float(v) for v in conv]
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X)[:, self.support_]

    def fit_transform(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.fit(X, y).transform(X)
