"""Everything a run is built from, assembled from a config: data, split, features, model.

`Experiment.from_config` is shared by training, prediction, benchmarks and inverse design, so
they all see the same input genes, features and target encodings.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from vccjax import models
from vccjax.data import dataset as dataset_lib
from vccjax.data import features as features_lib
from vccjax.data import splits
from vccjax.data import targets as targets_lib
from vccjax.data import go_idf as go_idf_lib
from vccjax.errors import InputError
from vccjax.experiment import effect_memory
from vccjax.models import ModelInputs
from vccjax.models import effect_prior


class TargetEncoding(NamedTuple):
  """Per-target model inputs.

  pert_genes: [T, K, F]; pert_gene_mask, target_out_pos: [T, K]; prior_lfc: [T, G] the ridge
  prior on the target's log fold changes (leave-one-out for training targets). The memory of
  measured effects (`effect_memory`; M = 0 when the model reads none): memory_lfc [T, M, G] and
  memory_keys [T, M, F] (the same for every target: broadcast views), memory_sim [T, K, M],
  memory_mask [T, M].
  """
  pert_genes: np.ndarray
  pert_gene_mask: np.ndarray
  target_out_pos: np.ndarray
  prior_lfc: np.ndarray
  memory_lfc: np.ndarray
  memory_keys: np.ndarray
  memory_sim: np.ndarray
  memory_mask: np.ndarray


def build_gene_tables(config, dataset) -> list[features_lib.GeneTable]:
  """The feature sources named in `config.features.sources` (comma-separated)."""
  tables = []
  for source in splits.parse_targets(config.features.sources):
    if source == "control_pca":
      tables.append(_control_pca_table(dataset, dim=config.features.dim))
    elif source == "go":
      tables.append(features_lib.read_go_table(config.features.go_path, dim=config.features.dim))
    elif source.startswith("file:"):
      tables.append(features_lib.read_vector_file(source[5:], dim=config.features.dim))
    else:
      raise InputError("config.features.sources", f"unknown source {source!r}",
                       "use control_pca, go or file:PATH")
  if not tables:
    raise InputError("config.features.sources", "no perturbation feature source",
                     "e.g. --config.features.sources=control_pca,go")
  return tables


def _control_pca_table(dataset, *, dim: int) -> features_lib.GeneTable:
  """`features.control_pca` of the dataset's controls, kept in the prepared-data cache."""
  def compute():
    return features_lib.control_pca(control_expr=dataset.hvg_log1p[dataset.labels.is_control],
                                    gene_names=dataset.gene_names[dataset.hvg], dim=dim).matrix
  return features_lib.GeneTable("control_pca", list(map(str, dataset.gene_names[dataset.hvg])),
                                dataset.derived(f"control_pca_{dim}", compute))


@dataclasses.dataclass
class Experiment:
  """A prepared run. `in_genes` are the input genes' positions among the output (all) genes."""
  config: object
  dataset: dataset_lib.PerturbDataset
  split: splits.TargetSplit
  gene_tables: list
  features: features_lib.PerturbationFeatures
  model: object
  max_genes: int
  prior: tuple = ()  # (predict(pooled features) -> lfc, {train target: leave-one-out lfc})
  ridge: float = 0.0  # the prior's ridge penalty (chosen by leave-one-out when configured <= 0)
  memory: effect_memory.EffectMemory | None = None  # measured training effects (if read)

  @classmethod
  def from_config(cls, config, *, verbose: bool = False) -> "Experiment":
    data_cfg = config.data
    if not data_cfg.path:
      raise InputError("config.data.path", "no data file", "set --config.data.path=FILE.h5ad")
    ds = dataset_lib.load_dataset(data_cfg.path, control_label=data_cfg.control_label,
                                  n_hvg=data_cfg.n_hvg, backed=data_cfg.backed,
                                  stream=data_cfg.get("stream", False),
                                  lfc_pseudocount=data_cfg.lfc_pseudocount,
                                  cache=data_cfg.get("cache", True),
                                  cache_dir=data_cfg.get("cache_dir", "") or None,
                                  verbose=verbose)
    split = splits.split_targets(
        ds.targets, test_targets=data_cfg.test_targets, val_targets=data_cfg.val_targets,
        test_fraction=data_cfg.test_fraction, val_fraction=data_cfg.val_fraction,
        seed=data_cfg.split_seed, where="config.data")
    tables = build_gene_tables(config, ds)
    genes = sorted({g for t in ds.targets for g in targets_lib.genes_of(t)})
    feats = features_lib.combine(tables, genes)
    model_kwargs = {k: v for k, v in config.model.to_dict().items() if k != "name"}
    model = models.get_model(config.model.name, n_genes_out=ds.n_genes, **model_kwargs)
    max_genes = max(len(targets_lib.genes_of(t)) for t in ds.targets)
    exp = cls(config=config, dataset=ds, split=split, gene_tables=tables, features=feats,
              model=model, max_genes=max(max_genes, config.data.get("max_genes_per_target", 1)))
    exp.prior = exp._fit_prior(ridge=config.optim.ridge)
    exp.memory = exp._build_memory(read=models.reads_memory(model))
    return exp

  def _build_memory(self, *, read: bool) -> effect_memory.EffectMemory:
    """The training targets' measured effects (an empty memory when the model reads none)."""
    train = self.split.train if read else []
    rows = [self.dataset.targets.index(t) for t in train]
    keys = pooled_features(self.encode(train, allow_missing=True, with_prior=False))
    go_path = self.config.features.get("go_path", "")
    go = go_idf_lib.read_go_idf(go_path) if read and go_path else None
    return effect_memory.build(targets=train, lfc=self.dataset.target_lfc[rows], keys=keys,
                               gene_names=self.dataset.gene_names, go=go)

  def _fit_prior(self, *, ridge: float):
    """The ridge prior from the training targets' pooled features to their log fold changes."""
    rows = [self.dataset.targets.index(t) for t in self.split.train]
    pooled = pooled_features(self.encode(self.split.train, allow_missing=True, with_prior=False))
    predict, loo, self.ridge = effect_prior.ridge_prior(
        train_features=pooled, train_lfc=self.dataset.target_lfc[rows], ridge=ridge)
    return predict, dict(zip(self.split.train, loo))

  @property
  def in_genes(self) -> np.ndarray:
    return self.dataset.hvg

  def features_for(self, genes: list[str]) -> features_lib.PerturbationFeatures:
    """Features of any genes (e.g. unseen targets or design candidates) from the same sources."""
    return features_lib.combine(self.gene_tables, genes)

  def encode(self, targets: list[str], *, feats=None, allow_missing: bool = False,
             with_prior: bool = True) -> TargetEncoding:
    """Model inputs describing each target's perturbation.

    A gene without features raises InputError unless `allow_missing` (then it is encoded as
    "no information": zero features, no presence flag). `with_prior=False` leaves the ridge
    prior at 0 (used while fitting it).
    """
    feats = feats or self.features
    index = {g: i for i, g in enumerate(self.dataset.gene_names)}
    k, f = self.max_genes, feats.matrix.shape[1]
    out = TargetEncoding(np.zeros((len(targets), k, f), np.float32),
                         np.zeros((len(targets), k), bool),
                         np.full((len(targets), k), -1, np.int32),
                         np.zeros((len(targets), self.dataset.n_genes), np.float32),
                         *self._memory_fields(targets, f))
    for i, target in enumerate(targets):
      rows = feats.rows(target, where=f"target {target!r}", allow_missing=allow_missing)
      if len(rows) > k:
        raise InputError(f"target {target!r}", f"{len(rows)} genes but the model takes <= {k}",
                         "set config.data.max_genes_per_target")
      for j, (gene, row) in enumerate(zip(targets_lib.genes_of(target), rows)):
        if row >= 0:
          out.pert_genes[i, j] = feats.matrix[row]
        out.pert_gene_mask[i, j] = True
        out.target_out_pos[i, j] = index.get(gene, -1)
    if with_prior and self.prior:
      self._fill_priors(targets, out)
    return out

  def _memory_fields(self, targets: list[str], n_features: int) -> tuple:
    """(memory_lfc, memory_keys, memory_sim, memory_mask) of `targets` (see TargetEncoding)."""
    t, g = len(targets), self.dataset.n_genes
    if self.memory is None or not self.memory.size:
      return (np.zeros((t, 0, g), np.float32), np.zeros((t, 0, n_features), np.float32),
              np.zeros((t, self.max_genes, 0), np.float32), np.zeros((t, 0), bool))
    sim, mask = effect_memory.read_fields(self.memory, targets, max_genes=self.max_genes)
    return (np.broadcast_to(self.memory.lfc, (t,) + self.memory.lfc.shape),
            np.broadcast_to(self.memory.keys, (t,) + self.memory.keys.shape), sim, mask)

  def _fill_priors(self, targets: list[str], enc: TargetEncoding) -> None:
    """Writes each target's prior into `enc.prior_lfc` (ridge predictions in one batch).

    A single gets its ridge prior (leave-one-out if it trained). A combination gets the sum of
    its singles: the measured fold changes of a single that trained (the additive model, which
    the literature finds hard to beat on doubles), the ridge prior of any other. A target tied to
    a cell type ('A@T98G') gets the mean of the same perturbation measured in the other cell
    types when any trained (transfer to a new cell type).
    """
    predict, loo = self.prior
    row = {t: i for i, t in enumerate(self.dataset.targets)}
    pooled = pooled_features(enc)
    to_predict = []  # (target index, feature vector)
    for i, target in enumerate(targets):
      perturbation = targets_lib.perturbation_of(target)
      if targets_lib.cell_type_of(target) is not None:
        same = [t for t in loo if t != target and targets_lib.perturbation_of(t) == perturbation]
        if same:
          enc.prior_lfc[i] = np.mean([self.dataset.target_lfc[row[t]] for t in same], axis=0)
          continue
      genes = targets_lib.genes_of(target)
      if len(genes) == 1:
        if target in loo:
          enc.prior_lfc[i] = loo[target]
        else:
          to_predict.append((i, pooled[i]))
        continue
      for j, gene in enumerate(genes):
        if gene in loo:
          enc.prior_lfc[i] += self.dataset.target_lfc[row[gene]]
        else:
          to_predict.append((i, enc.pert_genes[i, j]))
    if to_predict:
      predicted = predict(np.stack([v for _, v in to_predict]))
      for (i, _), p in zip(to_predict, predicted):
        enc.prior_lfc[i] += p


def pooled_features(enc: TargetEncoding) -> np.ndarray:
  """[T, F] sum of each target's genes' features (a double is built from both)."""
  return (enc.pert_genes * enc.pert_gene_mask[..., None]).sum(1)


def model_inputs(control_expr: np.ndarray, control_mask: np.ndarray, enc: TargetEncoding,
                 rows: np.ndarray) -> ModelInputs:
  """ModelInputs for sets whose perturbations are `enc` rows `rows` ([B])."""
  return ModelInputs(control_expr=control_expr, control_mask=control_mask,
                     pert_genes=enc.pert_genes[rows], pert_gene_mask=enc.pert_gene_mask[rows],
                     target_out_pos=enc.target_out_pos[rows], prior_lfc=enc.prior_lfc[rows],
                     memory_lfc=enc.memory_lfc[rows], memory_keys=enc.memory_keys[rows],
                     memory_sim=enc.memory_sim[rows], memory_mask=enc.memory_mask[rows])

