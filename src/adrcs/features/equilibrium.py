"""Equilibrium Optimizer (EO) on niapy's `Algorithm` interface (minimisation).

Faramarzi, Heidarinejad, Stephens & Mirjalili, "Equilibrium optimizer: A novel optimization algorithm",
Knowledge-Based Systems 191 (2020). Particles are concentrations C; each iteration:

* equilibrium pool (eq. 7): the 4 best solutions found so far and their mean, C_eq,pool = {C1, C2, C3, C4, C_ave};
* time (eq. 9): t = (1 - it / T) ** (a2 * it / T);
* exponential term (eq. 11): F = a1 * sign(r - 0.5) * (exp(-lambda * t) - 1), r, lambda ~ U(0, 1)^D;
* generation rate (eq. 13-15): GCP = 0.5 * r1 if r2 >= GP else 0; G0 = GCP * (C_eq - lambda * C); G = G0 * F;
* update (eq. 16): C = C_eq + (C - C_eq) * F + G / (lambda * V) * (1 - F), V = 1, C_eq drawn from the pool;
* memory saving: a particle whose new position is worse goes back to its previous one.

Defaults a1 = 2, a2 = 1, GP = 0.5 as in the paper. New positions are repaired with `task.repair` and
evaluated one at a time with `task.eval`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from niapy.algorithms.algorithm import Algorithm
from niapy.task import Task

from adrcs.features.red_deer import evaluate_all, search_progress

__all__ = ["EquilibriumOptimizer"]


class EquilibriumOptimizer(Algorithm):
    """Equilibrium Optimizer (Faramarzi et al. 2020) for niapy tasks (minimisation).

    Args:
        population_size: number of particles (at least 1; the pool repeats members when it is below 4).
        a1: exploration constant of the exponential term F.
        a2: exploitation constant of the time t.
        gp: generation probability GP (the generation rate is applied when r2 >= GP).
    """

    Name = ["EquilibriumOptimizer", "EO"]
    POOL_BEST = 4  # candidates in the equilibrium pool besides their mean

    def __init__(self, population_size: int = 30, a1: float = 2.0, a2: float = 1.0, gp: float = 0.5,
                 *args: Any, **kwargs: Any) -> None:
        super().__init__(population_size, *args, **kwargs)
        self.a1, self.a2, self.gp = a1, a2, gp

    @staticmethod
    def info() -> str:
        """Reference of the algorithm."""
        return ("Faramarzi, A., Heidarinejad, M., Stephens, B., Mirjalili, S.: Equilibrium optimizer: A novel "
                "optimization algorithm. Knowledge-Based Systems 191, 105190 (2020).")

    def set_parameters(self, population_size: int = 30, a1: float = 2.0, a2: float = 1.0, gp: float = 0.5,
                       **kwargs: Any) -> None:
        """Set the algorithm's parameters (see the class docstring)."""
        super().set_parameters(population_size=population_size, **kwargs)
        self.a1, self.a2, self.gp = a1, a2, gp

    def get_parameters(self) -> dict[str, Any]:
        """The algorithm's parameters."""
        d = super().get_parameters()
        d.update(a1=self.a1, a2=self.a2, gp=self.gp)
        return d

    def update_candidates(self, cand_x: np.ndarray, cand_f: np.ndarray, population: np.ndarray,
                          fitness: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The 4 best distinct solutions among the current candidates and the population (repeats if fewer)."""
        xs = np.concatenate([cand_x, population])
        fs = np.concatenate([cand_f, fitness])
        keep: list[int] = []
        for i in np.argsort(fs, kind="stable"):
            if not any(np.array_equal(xs[i], xs[j]) for j in keep):
                keep.append(int(i))
            if len(keep) == self.POOL_BEST:
                break
        idx = np.resize(np.array(keep), self.POOL_BEST)  # tiny populations: repeat the best ones
        return xs[idx].copy(), fs[idx].copy()

    @staticmethod
    def equilibrium_pool(cand_x: np.ndarray) -> np.ndarray:
        """Eq. 7: the pool (5, D) = the 4 candidates and their mean C_ave."""
        return np.concatenate([cand_x, cand_x.mean(axis=0, keepdims=True)])

    def init_population(self, task: Task):
        """Random particles; the pool candidates go into the params as `cand_x`, `cand_f`."""
        pop, fpop, params = super().init_population(task)
        cand_x, cand_f = self.update_candidates(np.empty((0, task.dimension)), np.empty(0), pop, fpop)
        params.update(cand_x=cand_x, cand_f=cand_f)
        return pop, fpop, params

    def run_iteration(self, task: Task, population: np.ndarray, population_fitness: np.ndarray, best_x: np.ndarray,
                      best_fitness: float, **params: Any):
        """One EO iteration: move every particle around a pool member, memory saving, update the pool."""
        cand_x, cand_f = params["cand_x"], params["cand_f"]
        pool = self.equilibrium_pool(cand_x)
        progress = search_progress(task)
        t = (1 - progress) ** (self.a2 * progress)  # eq. 9
        new = np.empty_like(population)
        for i, c in enumerate(population):
            ceq = pool[int(self.integers(len(pool)))]
            lam = np.maximum(self.random(c.shape), 1e-12)  # turnover rate lambda (guarded: it divides below)
            r = self.random(c.shape)
            f_exp = self.a1 * np.sign(r - 0.5) * (np.exp(-lam * t) - 1)  # eq. 11
            r1, r2 = self.random(), self.random()
            gcp = 0.5 * r1 if r2 >= self.gp else 0.0  # eq. 15
            g = gcp * (ceq - lam * c) * f_exp  # eq. 13-14
            new[i] = task.repair(ceq + (c - ceq) * f_exp + g / lam * (1 - f_exp), rng=self.rng)  # eq. 16, V = 1
        new_f = evaluate_all(task, new)
        # memory saving: keep the previous position where it was better
        worse = new_f > population_fitness
        new[worse], new_f[worse] = population[worse], population_fitness[worse]
        cand_x, cand_f = self.update_candidates(cand_x, cand_f, new, new_f)
        best_x, best_fitness = self.get_best(new, new_f, best_x, best_fitness)
        return new, new_f, best_x, best_fitness, {"cand_x": cand_x, "cand_f": cand_f}
