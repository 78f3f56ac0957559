"""Models side by side on held-out targets of any VCC-layout file: `python -m vccjax.benchmark`.

`folds` picks the targets each fold holds out (singles, doubles or a cell type), trains and
scores every model on a fold with `vccjax.train`, and tabulates the scores over folds;
`__main__` holds the flags and writes `results.json`.
"""
