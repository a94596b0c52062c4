"""Red Deer Algorithm (RDA) and Enhanced Red Deer (ERD) on niapy's `Algorithm` interface (minimisation).

RDA (Fathollahi-Fard, Hajiaghaei-Keshteli & Tavakkoli-Moghaddam, "Red deer algorithm (RDA): a new
nature-inspired meta-heuristic", Soft Computing 24, 2020). Each iteration, with the population sorted by cost:

1. the best ``n_males`` share are males, the rest hinds;
2. **roaring** (eq. 3): every male tries ``male +- a1 * ((UB - LB) * a2 + LB)`` and keeps it if better;
3. the best ``gamma`` share of males become **commanders**, the other males are **stags** (eq. 4-5);
4. **fighting** (eq. 6-7): each commander fights a random stag; ``(com + stag) / 2 +- b1 * ((UB - LB) * b2 + LB)``
   gives two new solutions and the commander becomes the best of the four;
5. **harems** (eq. 8-10): commander power ``P_n = |V_n / sum V|`` with ``V_n = cost_n - max cost``; hinds are
   dealt to commanders in proportion to their power;
6. **mating** (eq. 11-14): a commander mates with ``alpha`` of its harem's hinds and with ``beta`` of the
   hinds of another random harem; every stag mates with its nearest hind;
   ``offspring = (male + hind) / 2 + (UB - LB) * c``;
7. **next generation**: all males are kept; the remaining places are drawn by roulette wheel (by fitness)
   from hinds + offspring.

ERD adds a **tinkering strategy** (see `EnhancedRedDeer`): when the harems' quality differs a lot, with a
probability growing over the run, the hinds of the worst harems are handed to the best commanders and pulled
toward the global best, so late iterations exploit the best region.

Implementation choices: the random weights (a1, a2, a3, b1, b2, c) are drawn per dimension; the paper's
mating step ``c`` in [0, 1] is one-signed (in a bounded box it pushes every coordinate to the upper bound,
i.e. with the binary transfer it would select every feature), so here ``c ~ U(-1, 1) * mating_step``;
every commander keeps at least one hind when there are enough hinds (the paper's power is 0 for the worst
commander, which would leave it without a harem).
Every new position is repaired into the bounds with `task.repair` and evaluated one at a time with
`task.eval` (niapy counts evaluations and records convergence there).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from niapy.algorithms.algorithm import Algorithm
from niapy.task import Task

__all__ = ["RedDeer", "EnhancedRedDeer", "search_progress", "evaluate_all"]


def search_progress(task: Task) -> float:
    """Fraction t / T of the budget used: iterations when `max_iters` is finite, else evaluations, else 0."""
    if np.isfinite(task.max_iters) and task.max_iters > 0:
        return float(min(task.iters / task.max_iters, 1.0))
    if np.isfinite(task.max_evals) and task.max_evals > 0:
        return float(min(task.evals / task.max_evals, 1.0))
    return 0.0


def evaluate_all(task: Task, positions: np.ndarray) -> np.ndarray:
    """Costs of the rows of `positions`, evaluated one at a time through `task.eval`."""
    return np.array([task.eval(x) for x in positions], dtype=float).reshape(len(positions))


def _finite(costs: np.ndarray) -> np.ndarray:
    """Costs with +inf (task.eval after the evaluation budget ran out) replaced by the worst finite cost."""
    costs = np.asarray(costs, float)
    ok = np.isfinite(costs)
    if ok.all() or not ok.any():
        return np.where(ok, costs, 0.0)
    return np.where(ok, costs, costs[ok].max())


class RedDeer(Algorithm):
    """Red Deer Algorithm (Fathollahi-Fard et al. 2020) for niapy tasks (minimisation).

    Args:
        population_size: number of red deer N (at least 3).
        n_males: share of the population that are males (the best ones), e.g. 0.25.
        gamma: share of the males that become commanders (the best males).
        alpha: share of its own harem a commander mates with.
        beta: share of another random harem a commander mates with.
        mating_step: half-width of the offspring's random step, as a fraction of (UB - LB).
    """

    Name = ["RedDeer", "RDA"]

    def __init__(self, population_size: int = 50, n_males: float = 0.25, gamma: float = 0.4, alpha: float = 0.8,
                 beta: float = 0.4, mating_step: float = 0.1, *args: Any, **kwargs: Any) -> None:
        super().__init__(population_size, *args, **kwargs)
        self.n_males, self.gamma, self.alpha, self.beta = n_males, gamma, alpha, beta
        self.mating_step = mating_step

    @staticmethod
    def info() -> str:
        """Reference of the algorithm."""
        return ("Fathollahi-Fard, A.M., Hajiaghaei-Keshteli, M., Tavakkoli-Moghaddam, R.: Red deer algorithm (RDA): "
                "a new nature-inspired meta-heuristic. Soft Computing 24, 14637-14665 (2020).")

    def set_parameters(self, population_size: int = 50, n_males: float = 0.25, gamma: float = 0.4,
                       alpha: float = 0.8, beta: float = 0.4, mating_step: float = 0.1, **kwargs: Any) -> None:
        """Set the algorithm's parameters (see the class docstring)."""
        super().set_parameters(population_size=population_size, **kwargs)
        self.n_males, self.gamma, self.alpha, self.beta = n_males, gamma, alpha, beta
        self.mating_step = mating_step

    def get_parameters(self) -> dict[str, Any]:
        """The algorithm's parameters."""
        d = super().get_parameters()
        d.update(n_males=self.n_males, gamma=self.gamma, alpha=self.alpha, beta=self.beta,
                 mating_step=self.mating_step)
        return d

    # ------------------------------------------------------------------ sizes
    def group_sizes(self) -> tuple[int, int, int]:
        """(males, commanders, hinds): at least 2 males (a commander and a stag) and 1 hind."""
        n = int(self.population_size)
        if n < 3:
            raise ValueError(f"RedDeer needs population_size >= 3, got {n}")
        n_male = int(np.clip(round(self.n_males * n), 2, n - 1))
        n_com = int(np.clip(round(self.gamma * n_male), 1, n_male - 1))
        return n_male, n_com, n - n_male

    def _box_step(self, task: Task, shape: tuple[int, ...]) -> np.ndarray:
        """Paper's random step r1 * ((UB - LB) * r2 + LB) (eq. 3 and 6-7), per dimension."""
        r1, r2 = self.random(shape), self.random(shape)
        return r1 * (task.range * r2 + task.lower)

    # ------------------------------------------------------------------ phases
    def roar(self, task: Task, males: np.ndarray, males_f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Roaring (eq. 3): each male moves to a random nearby point and keeps it if it is better."""
        males, males_f = males.copy(), males_f.copy()
        for i in range(len(males)):
            step = self._box_step(task, males[i].shape)
            sign = np.where(self.random(males[i].shape) >= 0.5, 1.0, -1.0)  # a3 >= 0.5: up, else down
            new = task.repair(males[i] + sign * step, rng=self.rng)
            f = task.eval(new)
            if f < males_f[i]:
                males[i], males_f[i] = new, f
        return males, males_f

    def fight(self, task: Task, commanders: np.ndarray, commanders_f: np.ndarray, stags: np.ndarray,
              stags_f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fighting (eq. 6-7): each commander fights a random stag and becomes the best of the four solutions."""
        commanders, commanders_f = commanders.copy(), commanders_f.copy()
        if len(stags) == 0:
            return commanders, commanders_f
        for i in range(len(commanders)):
            j = int(self.integers(len(stags)))
            mid = (commanders[i] + stags[j]) / 2
            step = self._box_step(task, mid.shape)
            new1 = task.repair(mid + step, rng=self.rng)
            new2 = task.repair(mid - step, rng=self.rng)
            cands = np.stack([commanders[i], stags[j], new1, new2])
            costs = np.array([commanders_f[i], stags_f[j], task.eval(new1), task.eval(new2)])
            b = int(np.argmin(costs))
            commanders[i], commanders_f[i] = cands[b].copy(), costs[b]
        return commanders, commanders_f

    def form_harems(self, commanders_f: np.ndarray, n_hinds: int) -> np.ndarray:
        """Harem forming (eq. 8-10): harem label (commander index) of each hind, sizes proportional to power."""
        cost = _finite(commanders_f)
        v = cost - cost.max()  # normalised power V_n = v_n - max_i v_i (<= 0 for minimisation)
        power = np.abs(v / v.sum()) if v.sum() != 0 else np.full(len(cost), 1.0 / len(cost))
        # every commander keeps one hind when there are enough (the paper's P_n is 0 for the worst commander),
        # the rest is N.harem_n = round(P_n * N_hind), by largest remainders so every hind gets a harem
        floor = 1 if n_hinds >= len(cost) else 0
        raw = power * (n_hinds - floor * len(cost))
        sizes = np.floor(raw).astype(int) + floor
        rest = n_hinds - sizes.sum()
        if rest > 0:
            sizes[np.argsort(-(raw - np.floor(raw)), kind="stable")[:rest]] += 1
        return self.rng.permutation(np.repeat(np.arange(len(cost)), sizes))

    def offspring(self, task: Task, male: np.ndarray, hind: np.ndarray) -> np.ndarray:
        """Mating (eq. 12): (male + hind) / 2 + (UB - LB) * c, c ~ U(-1, 1) * mating_step, repaired."""
        c = self.uniform(-1.0, 1.0, male.shape) * self.mating_step
        return task.repair((male + hind) / 2 + task.range * c, rng=self.rng)

    def mate(self, task: Task, commanders: np.ndarray, stags: np.ndarray, hinds: np.ndarray,
             harem: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mating (eq. 11-14): commanders with alpha of their harem and beta of another, stags with nearest hind."""
        children = []
        members = [np.flatnonzero(harem == h) for h in range(len(commanders))]
        for h, own in enumerate(members):
            # commander with round(alpha * |harem|) of its own hinds (eq. 11)
            for k in self.rng.permutation(own)[:int(round(self.alpha * len(own)))]:
                children.append(self.offspring(task, commanders[h], hinds[k]))
            # ... and with round(beta * |harem_k|) hinds of another random, non-empty harem (eq. 13)
            others = [g for g in range(len(commanders)) if g != h and len(members[g])]
            if others:
                g = others[int(self.integers(len(others)))]
                for k in self.rng.permutation(members[g])[:int(round(self.beta * len(members[g])))]:
                    children.append(self.offspring(task, commanders[h], hinds[k]))
        # each stag with its nearest hind (eq. 14, Euclidean distance)
        for stag in stags:
            k = int(np.argmin(np.linalg.norm(hinds - stag, axis=1)))
            children.append(self.offspring(task, stag, hinds[k]))
        if not children:
            return np.empty((0, task.dimension)), np.empty(0)
        children_x = np.stack(children)
        return children_x, evaluate_all(task, children_x)

    def next_generation(self, males: np.ndarray, males_f: np.ndarray, pool: np.ndarray,
                        pool_f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Next generation: keep all males, fill up to N by roulette wheel over hinds + offspring."""
        n_rest = int(self.population_size) - len(males)
        cost = _finite(pool_f)
        weight = cost.max() - cost  # minimisation: lower cost, larger slice of the wheel
        weight = weight + (0.01 * weight.max() if weight.max() > 0 else 1.0)  # the worst keeps a small chance
        pick = self.rng.choice(len(pool), size=n_rest, replace=False, p=weight / weight.sum())
        return np.concatenate([males, pool[pick]]), np.concatenate([males_f, pool_f[pick]])

    def adjust_harems(self, task: Task, hinds: np.ndarray, hinds_f: np.ndarray, harem: np.ndarray,
                      commanders_f: np.ndarray, best_x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hook between harem forming and mating; plain RDA leaves the harems as they are."""
        return hinds, hinds_f, harem

    # ------------------------------------------------------------------ iteration
    def run_iteration(self, task: Task, population: np.ndarray, population_fitness: np.ndarray, best_x: np.ndarray,
                      best_fitness: float, **params: Any):
        """One RDA generation: roar, fight, form harems, (tinker), mate, select the next generation."""
        n_male, n_com, _ = self.group_sizes()
        order = np.argsort(population_fitness, kind="stable")
        pop, fit = population[order], np.asarray(population_fitness, float)[order]
        males, males_f = self.roar(task, pop[:n_male], fit[:n_male])
        hinds, hinds_f = pop[n_male:].copy(), fit[n_male:].copy()
        order = np.argsort(males_f, kind="stable")  # commanders: the best gamma share of males
        males, males_f = males[order], males_f[order]
        commanders, commanders_f = self.fight(task, males[:n_com], males_f[:n_com], males[n_com:], males_f[n_com:])
        stags, stags_f = males[n_com:], males_f[n_com:]
        harem = self.form_harems(commanders_f, len(hinds))
        hinds, hinds_f, harem = self.adjust_harems(task, hinds, hinds_f, harem, commanders_f, best_x)
        kids, kids_f = self.mate(task, commanders, stags, hinds, harem)
        all_males = np.concatenate([commanders, stags])
        all_males_f = np.concatenate([commanders_f, stags_f])
        pool, pool_f = np.concatenate([hinds, kids]), np.concatenate([hinds_f, kids_f])
        best_x, best_fitness = self.get_best(np.concatenate([all_males, pool]), np.concatenate([all_males_f, pool_f]),
                                             best_x, best_fitness)
        pop, fit = self.next_generation(all_males, all_males_f, pool, pool_f)
        return pop, fit, best_x, best_fitness, {}


class EnhancedRedDeer(RedDeer):
    """Red Deer with the tinkering strategy (ERD): weak harems are handed to the best commanders.

    After harem forming, at iteration t of T (harems h with at least one hind, m_h = mean cost of its hinds,
    f_min / f_max = best / worst cost among commanders and hinds):

    * eq. 14, harem fitness diversity:  D_t = (max_h m_h - min_h m_h) / (f_max - f_min + eps), in [0, 1];
    * eq. 15, tinkering probability:    P_t = p_min + (p_max - p_min) * t / T  (grows: exploit late);
    * eq. 16, trigger and move:         if r < P_t and D_t > delta (r ~ U(0, 1)), the hinds of the worst
      ceil(tinker_share * H) harems (by m_h; at least one harem stays) are reassigned, round robin, to the
      best commanders (by cost) outside those harems, and each moved hind is pulled toward the global best,
      h' = h + r' * (x_best - h), r' ~ U(0, 1)^D, kept if better.

    `tinker_count` counts reassigned hinds over the run and `tinker_events` the triggered iterations.

    Args:
        p_min, p_max: tinkering probability at the start and at the end of the run.
        delta: minimum normalised harem diversity D_t for tinkering.
        tinker_share: share of the non-empty harems treated as worst.
        (others as `RedDeer`)
    """

    Name = ["EnhancedRedDeer", "ERD"]

    def __init__(self, population_size: int = 50, n_males: float = 0.25, gamma: float = 0.4, alpha: float = 0.8,
                 beta: float = 0.4, mating_step: float = 0.1, p_min: float = 0.2, p_max: float = 0.9,
                 delta: float = 0.05, tinker_share: float = 0.5, *args: Any, **kwargs: Any) -> None:
        super().__init__(population_size, n_males, gamma, alpha, beta, mating_step, *args, **kwargs)
        self.p_min, self.p_max, self.delta, self.tinker_share = p_min, p_max, delta, tinker_share
        self.tinker_count = 0
        self.tinker_events = 0

    def set_parameters(self, population_size: int = 50, n_males: float = 0.25, gamma: float = 0.4,
                       alpha: float = 0.8, beta: float = 0.4, mating_step: float = 0.1, p_min: float = 0.2,
                       p_max: float = 0.9, delta: float = 0.05, tinker_share: float = 0.5, **kwargs: Any) -> None:
        """Set the algorithm's parameters (see the class docstring)."""
        super().set_parameters(population_size, n_males, gamma, alpha, beta, mating_step, **kwargs)
        self.p_min, self.p_max, self.delta, self.tinker_share = p_min, p_max, delta, tinker_share

    def get_parameters(self) -> dict[str, Any]:
        """The algorithm's parameters."""
        d = super().get_parameters()
        d.update(p_min=self.p_min, p_max=self.p_max, delta=self.delta, tinker_share=self.tinker_share)
        return d

    def init_population(self, task: Task):
        """Random initial herd; also resets the tinkering counters."""
        self.tinker_count, self.tinker_events = 0, 0
        return super().init_population(task)

    @staticmethod
    def harem_diversity(hinds_f: np.ndarray, harem: np.ndarray, all_f: np.ndarray) -> float:
        """Eq. 14: range of the harems' mean hind cost, normalised by the cost range of `all_f`."""
        hinds_f, all_f = _finite(hinds_f), _finite(all_f)
        means = [hinds_f[harem == h].mean() for h in np.unique(harem)]
        spread = all_f.max() - all_f.min()
        return float((max(means) - min(means)) / spread) if spread > 0 and len(means) > 1 else 0.0

    def tinker_probability(self, task: Task) -> float:
        """Eq. 15: P_t = p_min + (p_max - p_min) * t / T."""
        return self.p_min + (self.p_max - self.p_min) * search_progress(task)

    def tinker(self, task: Task, hinds: np.ndarray, hinds_f: np.ndarray, harem: np.ndarray,
               commanders_f: np.ndarray, best_x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Eq. 16 move: hinds of the worst harems go to the best commanders and step toward the global best."""
        hinds, hinds_f, harem = hinds.copy(), hinds_f.copy(), harem.copy()
        labels = np.unique(harem)
        if len(labels) < 2:
            return hinds, hinds_f, harem
        cost = _finite(hinds_f)
        means = np.array([cost[harem == h].mean() for h in labels])
        n_worst = min(len(labels) - 1, int(np.ceil(self.tinker_share * len(labels))))
        worst = labels[np.argsort(-means, kind="stable")[:n_worst]]
        targets = [int(c) for c in np.argsort(_finite(commanders_f), kind="stable") if c not in worst]
        targets = targets[:n_worst]
        moved = np.flatnonzero(np.isin(harem, worst))
        for n, k in enumerate(moved):
            harem[k] = targets[n % len(targets)]
            new = task.repair(hinds[k] + self.random(hinds[k].shape) * (best_x - hinds[k]), rng=self.rng)
            f = task.eval(new)
            if f < hinds_f[k]:
                hinds[k], hinds_f[k] = new, f
        self.tinker_count += len(moved)
        self.tinker_events += 1
        return hinds, hinds_f, harem

    def adjust_harems(self, task: Task, hinds: np.ndarray, hinds_f: np.ndarray, harem: np.ndarray,
                      commanders_f: np.ndarray, best_x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tinkering strategy: trigger (eq. 14-16) and, if it fires, reassign the worst harems' hinds."""
        diversity = self.harem_diversity(hinds_f, harem, np.concatenate([hinds_f, commanders_f]))
        if self.random() < self.tinker_probability(task) and diversity > self.delta:
            return self.tinker(task, hinds, hinds_f, harem, commanders_f, best_x)
        return hinds, hinds_f, harem
