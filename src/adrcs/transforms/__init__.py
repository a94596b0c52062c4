"""Wafer-map transforms: nearest-neighbour resize, one-hot encoding, dihedral augmentation."""
from adrcs.transforms.resize import resize_nearest, resize_stack
from adrcs.transforms.one_hot import one_hot_maps
from adrcs.transforms.dihedral import random_dihedral, dihedral_views

__all__ = ["resize_nearest", "resize_stack", "one_hot_maps", "random_dihedral", "dihedral_views"]
