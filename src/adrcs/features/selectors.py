"""Metaheuristic feature selection as scikit-learn-style selectors (`fit`, `transform`, `support_`).

Positions live in [0, 1]^F and a feature is selected where its coordinate is > 0.5 (threshold
transfer). The fitness is `SubsetFitness` (inner-split KNN accuracy and feature ratio). GA, PSO,
Grey Wolf and Sine-Cosine come from niapy; the red deer variants and EO (later) share the same
niapy `Algorithm` interface, so every selector runs through `MetaheuristicSelector`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from adrcs.features.fitness import SubsetFitness

NIAPY_ALGORITHMS = {"ga": "GeneticAlgorithm", "pso": "ParticleSwarmAlgorithm", "gwo": "GreyWolfOptimizer",
                    "sca": "SineCosineAlgorithm"}


def to_mask(position: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binary transfer: a continuous position in [0, 1]^F -> boolean feature mask."""
    return np.asarray(position) > threshold


def make_algorithm(name: str, population: int, seed: int, **kwargs: Any):
    """A niapy algorithm by short name (ga, pso, gwo, sca)."""
    import niapy.algorithms.basic as basic

    if name not in NIAPY_ALGORITHMS:
        raise ValueError(f"unknown selector {name!r}; known: {sorted(NIAPY_ALGORITHMS)}")
    return getattr(basic, NIAPY_ALGORITHMS[name])(population_size=population, seed=seed, **kwargs)


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
