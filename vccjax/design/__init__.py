"""Inverse design, which perturbation would produce a wanted change: `python -m vccjax.design`.

`signature` reads the wanted change (a csv of fold changes, or cells in an `.h5ad`); `candidates`
predicts each candidate's effect from one seeded set of control cells and scores it against the
signature in jitted chunks; `ranking` orders the singles, and pairs of the best singles;
`__main__` is the command.
"""
