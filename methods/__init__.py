"""Every denoiser of the benchmark: registry, shared backbone and masking, one module per method family."""

from methods.registry import METHODS, PLUGIN_GROUP, register_method
# Importing the built-ins registers them, in the order of the paper's Table 3.
from methods import classical, noise2true, noise2noise, laine, noise2void, noise2self, noise2same  # noqa: F401, E402

# Then the installed plugins, once, at the first import of `methods`: each is a module whose import
# registers its methods the same way.
METHODS.load_plugins(PLUGIN_GROUP)

__all__ = ["METHODS", "register_method"]
