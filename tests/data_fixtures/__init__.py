"""Writers of tiny datasets in the original on-disk formats, one module per real dataset; each has
`write(root: Path) -> None` that lays the files out under root exactly as the distribution does."""
