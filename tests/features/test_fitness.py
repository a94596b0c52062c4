"""Subset fitness: KNN accuracy on an inner split plus the feature-ratio term."""
import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from adrcs.features.fitness import SubsetFitness


def problem(n=300, informative=3, noise=27, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, informative + noise))
    X[:, :informative] += 3.0 * np.eye(3)[y][:, :informative]
    return X, y


def test_accuracy_matches_sklearn_knn():
    X, y = problem()
    f = SubsetFitness(X, y, k=5, holdout=0.3, seed=0)
    tr, te = train_test_split(np.arange(len(y)), test_size=0.3, random_state=0, stratify=y)
    mask = np.zeros(30, bool)
    mask[[0, 1, 2, 7]] = True
    ref = KNeighborsClassifier(5).fit(X[tr][:, mask], y[tr]).score(X[te][:, mask], y[te])
    assert abs(f.accuracy(mask[None])[0] - ref) < 0.02  # ties may break differently


def test_informative_subset_scores_higher_and_fewer_features_win_ties():
    X, y = problem()
    f = SubsetFitness(X, y, w=0.9)
    informative = np.zeros(30, bool)
    informative[:3] = True
    noise = np.zeros(30, bool)
    noise[10:13] = True
    everything = np.ones(30, bool)
    s = f(np.stack([informative, noise, everything, np.zeros(30, bool)]))
    assert s[0] > s[1] and s[0] > s[2] and s[3] == 0.0
    assert s[0] > 0.9 * 0.9  # high accuracy with 3 of 30 features
