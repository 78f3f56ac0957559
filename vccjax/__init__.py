"""vccjax: predict single-cell responses to unseen genetic perturbations in JAX/Flax."""

__version__ = "0.1.0"
