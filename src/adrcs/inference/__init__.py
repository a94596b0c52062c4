"""Inference: turning a model's probabilities into the answers the CLI, the reports and the service give."""
