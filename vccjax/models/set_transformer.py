"""The set transformer: control cells + a perturbation embedding -> the perturbed population.

Every cell of a control set is encoded (MLP on its input-gene log1p expression), the perturbation
(one or more target genes) is encoded by an order-invariant sum of per-gene MLP encodings, the two
are added, and a transformer with bidirectional attention and no positional encoding mixes the
set (so permuting the input cells permutes the output). A low-rank head maps each cell to a log
fold change over all output genes (see `models.inputs`); the target genes themselves get an
explicit knockdown: their fold change is a learned f (CRISPRi: f < 1, CRISPRa: f > 1), adjusted
per perturbation.

With `memory=True` the model also reads the measured effects of the training perturbations
(`memory_attention`): the learned mixture of them that fits the target is added to the output
(beside the ridge prior, both with learned per-gene gains starting at 0.5) and to the
perturbation embedding, so the per-cell corrections know what was recalled.

With `nearest_prior=k > 0` the model also starts from the `nearest_k` peer's answer: the
similarity-weighted mean of the k training effects whose GO annotations are most like the
target's (`baselines.nearest_recall`, over the entries the target may read, so never its own).
A learned gate per target, sigmoid(a + b * its best GO cosine), splits the start between the
ridge prior (1 - gate) and this GO-nearest prior (gate), each with a learned per-gene gain
starting at 1; the network's correction comes on top. At initialisation (a = b = 0) the start
is the mean of the two priors.

With `own_effect=True` (needs the memory) the model knows which target genes read their own
measured single (a double's measured singles, the same target in another cell type): such a
gene's encoding gains a learned vector, and the gate a term c * (share of such genes), both
starting at 0. A single never reads its own entry, so a run where nothing reads its own single
is exactly the run without the flag; the network can learn from the perturbations that do read
one (training doubles, other cell types) not to correct a gene's own measured effect as it
corrects a neighbour's.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from vccjax.models import baselines
from vccjax.models import inputs as model_inputs
from vccjax.models import memory_attention


class MLP(nn.Module):
  """Dense -> GELU -> Dense, with layer norm on the output."""
  hidden: int
  out: int

  @nn.compact
  def __call__(self, x):
    x = nn.gelu(nn.Dense(self.hidden)(x))
    return nn.LayerNorm()(nn.Dense(self.out)(x))


class PerturbationEncoder(nn.Module):
  """Features of K target genes -> one embedding, invariant to the genes' order.

  genes: [B, K, F] features; mask: [B, K] which slots hold a gene. Returns [B, hidden].
  """
  hidden: int

  @nn.compact
  def __call__(self, genes, mask, own=None):
    """own: [B, K] or None: 1 where a gene reads its own measured single; such a gene's encoding
    gains a learned vector (starting at 0, so the flag changes nothing until it is learned)."""
    per_gene = MLP(self.hidden, self.hidden, name="gene_mlp")(genes)
    if own is not None:
      own_vector = self.param("own_effect", nn.initializers.zeros, (self.hidden,))
      per_gene = per_gene + own[..., None] * own_vector
    pooled = jnp.sum(per_gene * mask[..., None], axis=1)
    return MLP(self.hidden, self.hidden, name="combine_mlp")(pooled)


class Block(nn.Module):
  """Pre-norm transformer block over a set (no positional encoding)."""
  hidden: int
  heads: int
  mlp_ratio: int
  dropout: float

  @nn.compact
  def __call__(self, h, attn_mask, *, deterministic: bool):
    y = nn.LayerNorm()(h)
    y = nn.MultiHeadDotProductAttention(num_heads=self.heads, dropout_rate=self.dropout,
                                        deterministic=deterministic)(y, y, mask=attn_mask)
    h = h + y
    y = nn.LayerNorm()(h)
    y = nn.Dense(self.hidden * self.mlp_ratio)(y)
    y = nn.Dropout(self.dropout, deterministic=deterministic)(nn.gelu(y))
    return h + nn.Dense(self.hidden)(y)


class SetTransformer(nn.Module):
  """Predicts the log fold change of every control cell over all output genes.

  Attributes:
    n_genes_out: number of output genes (all genes of the file).
    hidden, layers, heads, mlp_ratio, dropout: transformer size.
    decoder_rank: rank of the low-rank output head (hidden -> rank -> genes).
    knockdown: model the target genes' own knockdown explicitly.
    memory: attend over the memory of measured training effects (ModelInputs.memory_*).
    nearest_prior: k > 0: start also from the GO-nearest prior of the k most similar memory
      entries, gated against the ridge prior (see the module doc); 0: ridge prior only.
    start_at_prior: the output head's gene embedding starts at 0, so the untrained model
      predicts exactly its prior(s) (and the knockdown); training learns the corrections.
    own_effect: flag the target genes that read their own measured single (see the module doc).
  """
  n_genes_out: int
  hidden: int = 128
  layers: int = 2
  heads: int = 4
  mlp_ratio: int = 2
  dropout: float = 0.0
  decoder_rank: int = 64
  knockdown: bool = True
  memory: bool = False
  nearest_prior: int = 0
  start_at_prior: bool = False
  own_effect: bool = False

  @nn.compact
  def __call__(self, x: model_inputs.ModelInputs, *, deterministic: bool = True):
    """x: ModelInputs (control_expr [B,S,n_in], pert_genes [B,K,F], ...) -> log fold changes
    [B, S, n_genes_out]."""
    cells = MLP(self.hidden, self.hidden, name="cell_encoder")(x.control_expr)
    own = (baselines.own_effect_read(x.memory_sim, x.memory_mask, x.pert_gene_mask)
           if self.own_effect else None)
    pert = PerturbationEncoder(self.hidden, name="pert_encoder")(x.pert_genes, x.pert_gene_mask,
                                                                 own)
    if self.memory:
      recalled, _ = memory_attention.MemoryAttention(self.hidden, name="memory")(x)
      pert = pert + nn.Dense(self.hidden, name="recall_to_hidden")(recalled)
    h = cells + pert[:, None, :]
    attn_mask = nn.make_attention_mask(x.control_mask, x.control_mask)
    for i in range(self.layers):
      h = Block(self.hidden, self.heads, self.mlp_ratio, self.dropout, name=f"block_{i}")(
          h, attn_mask, deterministic=deterministic)
    h = nn.LayerNorm(name="out_norm")(h)
    # Low-rank head: per-cell and per-perturbation parts share the gene embedding.
    low = nn.Dense(self.decoder_rank, name="cell_to_rank")(h)
    low = low + nn.Dense(self.decoder_rank, name="pert_to_rank")(pert)[:, None, :]
    head_init = nn.initializers.zeros if self.start_at_prior else nn.initializers.normal(0.02)
    gene_embed = self.param("gene_embedding", head_init,
                            (self.decoder_rank, self.n_genes_out))
    gene_bias = self.param("gene_bias", nn.initializers.zeros, (self.n_genes_out,))
    # Start from the ridge prior (with a learned per-gene gain) and learn corrections.
    gain = nn.initializers.constant(0.5 if self.memory else 1.0)
    prior_gain = self.param("prior_gain", gain, (self.n_genes_out,))
    known = prior_gain * x.prior_lfc
    if self.nearest_prior > 0:
      known = self._gated_nearest_prior(x, known, own)
    if self.memory:
      known = known + self.param("memory_gain", gain, (self.n_genes_out,)) * recalled
    log_fold = low @ gene_embed + gene_bias + known[:, None, :]
    if self.knockdown:
      knock = self.param("knockdown_log_fold", nn.initializers.zeros, ())
      knock = knock + nn.Dense(1, kernel_init=nn.initializers.zeros,
                               name="knockdown_adjust")(pert)[:, None, :]
      log_fold = model_inputs.apply_knockdown(log_fold, x, knock)
    return log_fold

  def _gated_nearest_prior(self, x: model_inputs.ModelInputs, ridge_known, own=None):
    """[B, G] (1 - gate) * ridge_known + gate * gain * GO-nearest prior; gate per target.
    own: [B, K] the own-effect flags (`own_effect`), or None."""
    near = baselines.nearest_recall(x.memory_lfc, x.memory_sim, x.memory_mask,
                                    x.pert_gene_mask, k=self.nearest_prior)
    readable = jnp.broadcast_to(x.memory_mask[:, None, :], x.memory_sim.shape)
    best = jnp.where(readable, x.memory_sim, 0.0).max(-1, initial=0.0)  # [B, K]
    best = (best * x.pert_gene_mask).max(-1, initial=0.0)  # [B]
    bias = self.param("nearest_gate_bias", nn.initializers.zeros, ())
    slope = self.param("nearest_gate_slope", nn.initializers.zeros, ())
    logit = bias + slope * best
    if own is not None:
      share = own.sum(-1) / jnp.maximum(x.pert_gene_mask.sum(-1), 1)
      logit = logit + self.param("own_gate_slope", nn.initializers.zeros, ()) * share
    gate = nn.sigmoid(logit)[:, None]
    near_gain = self.param("nearest_gain", nn.initializers.ones, (self.n_genes_out,))
    return (1.0 - gate) * ridge_known + gate * near_gain * near
