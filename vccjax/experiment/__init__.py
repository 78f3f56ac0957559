"""What a run is built from, shared by training, prediction, benchmarks and inverse design.

`assembly` builds an `Experiment` from a config (prepared data, split of targets, perturbation
features, ridge prior on fold changes, model) and encodes targets as model inputs;
`training_data` picks what training sees (its cells, set sampler, pseudobulk targets and few-shot
cells); `predicted_cells` turns the model's fold changes into predicted cells of all genes, made
from real control cells. It imports `data` and `models`, never `train` or `predict`.
"""
