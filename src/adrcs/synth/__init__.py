"""Synthesis of wafer maps for rare classes: CAE and conditional WGAN-GP synthesizers, balancing."""
from adrcs.synth.base import Synthesizer, create_synthesizer, list_synthesizers, load_synthesizer

__all__ = ["Synthesizer", "create_synthesizer", "list_synthesizers", "load_synthesizer"]
