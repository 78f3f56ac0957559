"""The generative model behind synthetic VCC-layout screens: genes, programs, perturbation effects.

Each gene g has a baseline share of the transcriptome `exp(log_base[g])` (log-normal: many low,
few high genes), loadings `L[g]` on k latent programs and a latent essentiality `e[g]`. A cell's
log rate of gene g is

  log_base[g] + batch_log_factor[b, g] + program_sd * L[g] . z + penetrance * log_effect[p, g]

with z ~ N(0, I_k) per cell, so control co-expression carries `L L^T`. Its counts are negative
binomial: Poisson(library size * rate * Gamma(1/phi, phi)), the library size log-normal around
`median_umi`. CRISPRi of target t keeps `knockdown[t]` (0.1-0.4) of its own expression and shifts
every gene by

  strength[t] * (sqrt(1 - f) * unit(L A L[t]) + sqrt(f) * unit(specific[t]) + w * unit(shared)),

`unit` scaling to RMS 1 over genes, A = -I + program cross-talk. The effect of an unseen target is
thus a linear function of its loadings, which control co-expression and the gene embeddings (noisy
views of [L, e]) reveal; log strength[t] correlates with e[t]; only the fraction f is specific.
Strong targets get fewer cells, as in VCC where cell counts track growth effects.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

# Independent random streams, so that e.g. the cell design does not shift when a cell's draws do.
STREAM_MODEL, STREAM_DESIGN, STREAM_CELLS, STREAM_EMBEDDINGS = 0, 1, 2, 3


def stream(seed: int, *index: int) -> np.random.Generator:
  """The generator of one stream (and e.g. one cell) of a seeded synthetic screen."""
  return np.random.default_rng([seed, *index])


@dataclasses.dataclass(frozen=True)
class Biology:
  """Knobs of the generative model; defaults mimic H1 CRISPRi (VCC) at full depth.

  Attributes:
    gene_log_sd: SD of baseline log rates across genes (1.5: top 5% of genes carry ~45% of UMIs).
    n_programs: k, the number of latent gene programs.
    program_density: (lo, hi) of the share of genes loading on a program (uniform per program).
    loading_tail: SD of the log-normal scale of loadings (0: Gaussian; larger: more hub genes).
    program_sd: SD of a control cell's program activity, in log-rate units per unit loading.
    crosstalk: SD of program-to-program responses off the diagonal of A (times 1/sqrt(k)).
    dispersion: median NB dispersion phi (variance = mu + phi mu^2) of expressed genes.
    nb_min_count: genes expected below this count per cell at median depth stay Poisson, which
      saves the Gamma draw where overdispersion would add < phi * count of the Poisson variance.
    umi_log_sd: SD of log library size across cells.
    batch_log_sd: SD of per-batch gene-wise log factors (and of the per-batch log depth).
    strength_median: median effect strength, the RMS log fold change over genes.
    strength_log_sd: SD of log strength across targets.
    strength_essentiality: correlation of a target's log strength with its essentiality.
    knockdown_range: (lo, hi) of the share of its own expression a target keeps (uniform).
    specific_fraction: f, the share of an effect's variance that is target-specific noise.
    specific_density: share of genes a target-specific component touches.
    shared_weight: w, the RMS of the response all perturbations share, relative to strength.
    penetrance_sd: per-cell SD of the effect's scale around 1 (incomplete knockdown).
    growth_scale: strength at which a target's expected cell count falls by a factor e.
    cells_log_sd: SD of log cell count across targets beyond what strength explains.
    interaction_weight: RMS of a double's non-additive term, relative to sqrt(s_A * s_B).
  """
  gene_log_sd: float = 1.5
  n_programs: int = 16
  program_density: tuple[float, float] = (0.03, 0.3)
  loading_tail: float = 0.7
  program_sd: float = 0.13
  crosstalk: float = 0.3
  dispersion: float = 0.03
  nb_min_count: float = 5.0
  umi_log_sd: float = 0.33
  batch_log_sd: float = 0.1
  strength_median: float = 0.01
  strength_log_sd: float = 0.9
  strength_essentiality: float = 0.7
  knockdown_range: tuple[float, float] = (0.1, 0.4)
  specific_fraction: float = 0.15
  specific_density: float = 0.05
  shared_weight: float = 0.5
  penetrance_sd: float = 0.25
  growth_scale: float = 0.07
  cells_log_sd: float = 0.35
  interaction_weight: float = 0.3


@dataclasses.dataclass(frozen=True)
class SyntheticModel:
  """Ground truth of one synthetic screen (all arrays float64 unless noted).

  Attributes:
    gene_names: [genes] str, `SYN00001`, ...
    log_base: [genes] log share of a control cell's UMIs (log-sum-exp 0).
    loadings: [genes, programs] L, sparse Gaussian.
    essentiality: [genes] e ~ N(0, 1).
    dispersion: [genes] NB phi; 0 where the gene is drawn Poisson.
    batch_log_center: [batches, genes] a control cell's expected log count at library size 1
      (log_base + batch factor + batch depth, less the program variance's log-normal mean shift).
    perturbations: [perts] labels: single targets (gene names, in gene order), then `A+B` doubles.
    perturbed_genes: [perts, 2] int gene indices; -1 in the second column of a single.
    strength: [perts] RMS log fold change over genes (a double: s_A + s_B).
    knockdown: [perts, 2] share of each perturbed gene's expression kept (1 where none).
    log_effect: [perts, genes] log fold change of every gene's rate at penetrance 1 (the
      ground-truth mean effect; the target's own entry is log knockdown plus any cross effect).
    median_umi: median library size of control cells.
    biology: the knobs it was drawn with.
  """
  gene_names: np.ndarray
  log_base: np.ndarray
  loadings: np.ndarray
  essentiality: np.ndarray
  dispersion: np.ndarray
  batch_log_center: np.ndarray
  perturbations: list[str]
  perturbed_genes: np.ndarray
  strength: np.ndarray
  knockdown: np.ndarray
  log_effect: np.ndarray
  median_umi: float
  biology: Biology

  @functools.cached_property
  def nb_genes(self) -> np.ndarray:
    """[nb] indices of the genes drawn negative binomial."""
    return np.flatnonzero(self.dispersion > 0)

  @functools.cached_property
  def nb_shape(self) -> np.ndarray:
    """[nb] Gamma shape 1/phi of those genes."""
    return 1.0 / self.dispersion[self.nb_genes]

  @property
  def n_targets(self) -> int:
    return int((self.perturbed_genes[:, 1] < 0).sum())

  @property
  def target_genes(self) -> np.ndarray:
    """[targets] gene indices of the single targets."""
    return self.perturbed_genes[:self.n_targets, 0]


def _unit_rms(x: np.ndarray) -> np.ndarray:
  """Rows of x scaled to RMS 1 (rows of zeros stay zero)."""
  rms = np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True))
  return np.divide(x, rms, out=np.zeros_like(x), where=rms > 0)


def _sparse_normal(rng, shape, density: float) -> np.ndarray:
  return rng.standard_normal(shape) * (rng.random(shape) < density)


def _gene_programs(rng, n_genes: int, biology: Biology) -> np.ndarray:
  """[genes, programs] loadings: sparse, heavy-tailed, programs of different sizes.

  Heavy tails (Gaussian times a capped log-normal scale) give each program a few hub genes, so
  even a weak knockdown moves a handful of genes clearly, as in real screens.
  """
  shape = (n_genes, biology.n_programs)
  lo, hi = biology.program_density
  member = rng.random(shape) < rng.uniform(lo, hi, size=biology.n_programs)
  s = biology.loading_tail
  scale = np.exp(np.minimum(s * rng.standard_normal(shape), 2 * s) - s * s)
  return rng.standard_normal(shape) * scale * member


def _choose_targets(rng, log_base, loadings, n_targets: int) -> np.ndarray:
  """Sorted indices of targets among the better-expressed half of genes with program loadings."""
  ranked = np.argsort(-log_base, kind="stable")
  candidates = ranked[:max(n_targets, len(ranked) // 2)]
  loaded = candidates[np.abs(loadings[candidates]).sum(1) > 0]
  pool = loaded if len(loaded) >= n_targets else candidates
  return np.sort(rng.choice(pool, size=n_targets, replace=False))


def _single_effects(rng, loadings, targets, strength, knockdown, biology: Biology) -> np.ndarray:
  """[targets, genes] log fold changes of single knockdowns (see the module docstring)."""
  n_genes, k = loadings.shape
  crosstalk = biology.crosstalk * rng.standard_normal((k, k)) / np.sqrt(k)
  response = -np.eye(k) + crosstalk * (1 - np.eye(k))
  structured = _unit_rms(loadings[targets] @ response.T @ loadings.T)
  specific = _unit_rms(_sparse_normal(rng, (len(targets), n_genes), biology.specific_density))
  shared = _unit_rms(loadings @ rng.standard_normal(k))
  f = biology.specific_fraction
  effect = np.sqrt(1 - f) * structured + np.sqrt(f) * specific + biology.shared_weight * shared
  effect *= strength[:, None]
  effect[np.arange(len(targets)), targets] = np.log(knockdown)
  return effect


def _choose_pairs(rng, n_targets: int, n_doubles: int) -> np.ndarray:
  """[doubles, 2] distinct unordered pairs of target positions, first < second."""
  pairs: dict[tuple[int, int], None] = {}
  while len(pairs) < n_doubles:
    a, b = rng.choice(n_targets, size=2, replace=False)
    pairs.setdefault((int(min(a, b)), int(max(a, b))), None)
  return np.array(list(pairs), dtype=np.int64).reshape(-1, 2)


def _double_effects(rng, single_effect, strength, pairs, biology: Biology) -> np.ndarray:
  """[doubles, genes]: the sum of the two singles plus a small sparse interaction."""
  interaction = _unit_rms(_sparse_normal(rng, (len(pairs), single_effect.shape[1]),
                                         biology.specific_density))
  scale = biology.interaction_weight * np.sqrt(strength[pairs[:, 0]] * strength[pairs[:, 1]])
  return single_effect[pairs[:, 0]] + single_effect[pairs[:, 1]] + scale[:, None] * interaction


def _batch_log_center(rng, log_base, loadings, n_batches, median_umi, biology: Biology):
  """[batches, genes] expected log count of a control cell of each batch at library size 1."""
  factor = biology.batch_log_sd * rng.standard_normal((n_batches, len(log_base)))
  # Renormalised so batches differ in composition; their depth differs through `depth` alone.
  composition = log_base + factor
  composition -= logsumexp(composition, axis=1, keepdims=True)
  depth = biology.batch_log_sd * rng.standard_normal((n_batches, 1))
  depth += np.log(median_umi) - depth.mean()  # batches' depths centre on median_umi
  # E[exp(program_sd * L.z)] = exp(program_sd^2 |L|^2 / 2): removed so rates average to base.
  lognormal_shift = 0.5 * biology.program_sd ** 2 * np.square(loadings).sum(1)
  return composition + depth - lognormal_shift


def build_model(*, n_genes: int, n_targets: int, n_batches: int = 1, n_doubles: int = 0,
                median_umi: float = 50_000, biology: Biology = Biology(),
                seed: int = 0) -> SyntheticModel:
  """Draws the genes, programs and perturbation effects of a screen (no cells).

  Args:
    n_genes: genes in the panel.
    n_targets: single CRISPRi targets, chosen among the panel's better-expressed genes.
    n_batches: batches, each with its own gene-wise log factors.
    n_doubles: `A+B` double perturbations of pairs of single targets.
    median_umi: median total UMI count of a control cell.
    biology: knobs of the model.
    seed: the screen's seed; the model uses its own stream.
  """
  rng = stream(seed, STREAM_MODEL)
  b = biology
  log_base = b.gene_log_sd * rng.standard_normal(n_genes)
  log_base -= logsumexp(log_base)
  loadings = _gene_programs(rng, n_genes, b)
  essentiality = rng.standard_normal(n_genes)
  expressed = median_umi * np.exp(log_base) >= b.nb_min_count
  dispersion = np.where(expressed, b.dispersion * np.exp(0.3 * rng.standard_normal(n_genes)), 0.)
  center = _batch_log_center(rng, log_base, loadings, n_batches, median_umi, b)

  targets = _choose_targets(rng, log_base, loadings, n_targets)
  rho = b.strength_essentiality
  z = rho * essentiality[targets] + np.sqrt(1 - rho ** 2) * rng.standard_normal(n_targets)
  strength = b.strength_median * np.exp(b.strength_log_sd * z)
  knockdown = rng.uniform(*b.knockdown_range, size=n_targets)
  single = _single_effects(rng, loadings, targets, strength, knockdown, b)

  pairs = _choose_pairs(rng, n_targets, n_doubles)
  double = _double_effects(rng, single, strength, pairs, b)
  gene_names = np.array([f"SYN{i + 1:05d}" for i in range(n_genes)])
  single_genes = np.stack([targets, np.full(n_targets, -1)], axis=1)
  return SyntheticModel(
      gene_names=gene_names, log_base=log_base, loadings=loadings, essentiality=essentiality,
      dispersion=dispersion, batch_log_center=center,
      perturbations=(gene_names[targets].tolist()
                     + [f"{gene_names[targets[i]]}+{gene_names[targets[j]]}" for i, j in pairs]),
      perturbed_genes=np.concatenate([single_genes, targets[pairs]]),
      strength=np.concatenate([strength, strength[pairs].sum(1)]),
      knockdown=np.concatenate([np.stack([knockdown, np.ones(n_targets)], 1), knockdown[pairs]]),
      log_effect=np.concatenate([single, double]),
      median_umi=float(median_umi), biology=b)


@dataclasses.dataclass(frozen=True)
class CellDesign:
  """Who each cell is, in file order (cells of a batch are contiguous, shuffled within).

  Attributes:
    perturbation: [cells] int index into `model.perturbations`; -1 for a control.
    batch: [cells] int batch index.
    guide: [cells] int guide pair of a control (one of a pool); -1 for a perturbed cell.
  """
  perturbation: np.ndarray
  batch: np.ndarray
  guide: np.ndarray


def cells_per_perturbation(rng, strength, *, n_cells: int, n_batches: int,
                           biology: Biology) -> np.ndarray:
  """[perts] cell counts summing to n_cells, at least n_batches each, fewer for strong ones."""
  weight = np.exp(-strength / biology.growth_scale
                  + biology.cells_log_sd * rng.standard_normal(len(strength)))
  spare = n_cells - n_batches * len(strength)
  share = spare * weight / weight.sum()
  counts = np.floor(share).astype(np.int64)
  # Largest remainders get the cells that flooring left over.
  counts[np.argsort(counts - share, kind="stable")[:spare - counts.sum()]] += 1
  return counts + n_batches


def cell_design(model: SyntheticModel, *, n_cells: int, control_fraction: float,
                n_batches: int, seed: int, n_control_guides: int = 100) -> CellDesign:
  """Assigns perturbations, batches and control guides to n_cells cells.

  Every group (controls, each perturbation) is spread evenly over the batches; the caller checks
  that each group has at least n_batches cells.
  """
  rng = stream(seed, STREAM_DESIGN)
  n_control = int(round(control_fraction * n_cells))
  counts = cells_per_perturbation(rng, model.strength, n_cells=n_cells - n_control,
                                  n_batches=n_batches, biology=model.biology)
  groups = np.repeat(np.arange(-1, len(counts)), np.concatenate([[n_control], counts]))
  batch = np.concatenate([rng.permutation(np.arange(n) % n_batches)
                          for n in np.concatenate([[n_control], counts])])
  order = rng.permutation(n_cells)
  order = order[np.argsort(batch[order], kind="stable")]
  perturbation, batch = groups[order], batch[order]
  guide = np.where(perturbation < 0, rng.integers(0, n_control_guides, size=n_cells), -1)
  return CellDesign(perturbation=perturbation, batch=batch, guide=guide)


def sample_cell(model: SyntheticModel, *, perturbation: int, batch: int,
                rng: np.random.Generator) -> np.ndarray:
  """[genes] int64 raw UMI counts of one cell (-1 perturbation = control)."""
  b = model.biology
  activity = rng.standard_normal(model.loadings.shape[1])
  log_rate = (model.batch_log_center[batch] + b.umi_log_sd * rng.standard_normal()
              + b.program_sd * (model.loadings @ activity))
  if perturbation >= 0:
    penetrance = max(0.0, 1.0 + b.penetrance_sd * rng.standard_normal())
    log_rate += penetrance * model.log_effect[perturbation]
  rate = np.exp(log_rate)
  nb, shape = model.nb_genes, model.nb_shape
  rate[nb] *= rng.standard_gamma(shape) / shape
  return rng.poisson(rate)


def sample_rows(model: SyntheticModel, design: CellDesign, *, start: int, stop: int,
                seed: int) -> sp.csr_matrix:
  """Cells start..stop-1 as [cells, genes] float32 CSR (int64 indptr, so appends never overflow).

  Each cell draws from its own stream, so a cell's counts do not depend on how rows are chunked.
  """
  indices, data, nnz = [], [], np.zeros(stop - start + 1, dtype=np.int64)
  for row, cell in enumerate(range(start, stop)):
    counts = sample_cell(model, perturbation=int(design.perturbation[cell]),
                         batch=int(design.batch[cell]), rng=stream(seed, STREAM_CELLS, cell))
    genes = np.flatnonzero(counts)
    indices.append(genes.astype(np.int32))
    data.append(counts[genes].astype(np.float32))
    nnz[row + 1] = len(genes)
  x = sp.csr_matrix((np.concatenate(data), np.concatenate(indices), np.cumsum(nnz)),
                    shape=(stop - start, len(model.gene_names)))
  x.indptr = x.indptr.astype(np.int64)  # scipy downcasts to int32 when it fits
  return x


def gene_embeddings(model: SyntheticModel, *, dim: int = 32, noise: float = 0.5,
                    seed: int) -> np.ndarray:
  """[genes, dim] float32 noisy linear view of each gene's [loadings, essentiality].

  The synthetic analog of ESM2 / GO features: a random projection of the latent gene features
  plus Gaussian noise of `noise` times the projected signal's RMS.
  """
  rng = stream(seed, STREAM_EMBEDDINGS)
  latent = np.concatenate([model.loadings, model.essentiality[:, None]], axis=1)
  signal = latent @ rng.standard_normal((latent.shape[1], dim)) / np.sqrt(latent.shape[1])
  rms = np.sqrt(np.mean(np.square(signal)))
  return (signal + noise * rms * rng.standard_normal(signal.shape)).astype(np.float32)
