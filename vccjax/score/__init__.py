"""Scoring prediction files as the VCC 2025 leaderboard does: `python -m vccjax.score`.

`file_scores` reads, scales and summarises `.h5ad` files in row chunks and scores a prediction
against the real cells and the cell-mean baseline with the evaluator of `vccjax.metrics`;
`__main__` is the command.
"""
