"""The runner of the Noise2Same benchmark: specs -> cells -> results store -> reports, and the CLI.

Its kernel is `benchmark.registry` (the registries, the error types and the value checks): `methods/`
and `datamodules/` import that module and nothing else of this package, and it imports nothing of
the project, so importing it never pulls in the runner.
"""
