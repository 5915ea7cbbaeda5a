"""The runner of the Noise2Same benchmark: specs -> cells -> results store -> reports, and the CLI."""
