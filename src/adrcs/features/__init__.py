"""Feature extraction for the sinogram pipeline: SBAE encoder (more steps to follow: Radon, selection)."""
