"""Perturb-seq screens in `.h5ad` files; the only package that imports anndata.

`io` and `writer` read (in memory or backed) and atomically write files, `csr_rows` reads rows of
a CSR `X` into reused buffers; `normalize` applies the VCC scaling and picks HVGs; `dataset` (with
`streaming` for screens larger than memory) prepares a screen for training; `targets`, `splits`,
`sampler` and `features` parse labels, split targets, draw context-matched cell sets and build
perturbation features; `synthetic*` write synthetic screens; `validate` and `combine` are
commands (`python -m vccjax.data.validate`, `python -m vccjax.data.combine`).
"""
