"""Prediction from a trained run: `python -m vccjax.predict` writes a VCC submission.

`trained_run` loads a run's config, data and best parameters from its workdir; `submission`
streams the predicted cells of every listed target, plus control cells, into an `.h5ad`;
`__main__` is the command, which can also package the file as a `.vcc` with `cell-eval prep`.
"""
