"""The method registry: every denoiser, built-in or plugin, is looked up here by name."""

from __future__ import annotations

from benchmark.registry import Registry

METHODS: Registry[type] = Registry("method")
register_method = METHODS.register
# The packaging entry-point group through which installed packages add methods (see README, "Add a method").
PLUGIN_GROUP = "noise2same_bench.methods"
