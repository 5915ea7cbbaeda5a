"""Every denoiser of the benchmark: registry, shared backbone and masking, one module per method family."""

from methods.registry import METHODS, register_method
from methods import classical, noise2same, noise2true  # noqa: F401  (registers the built-ins)

__all__ = ["METHODS", "register_method"]
