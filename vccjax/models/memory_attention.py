"""Attention over the memory of measured effects: an unseen target's effect as a learned mixture.

For each target gene, a query (from its features) meets a key per memory entry (from the entry's
pooled features); the logit of an entry is their scaled dot product plus a learned multiple of
the gene's IDF-weighted GO cosine with the entry (`ModelInputs.memory_sim`; starting at 10, so
an untrained memory reads the GO-nearest entries, as the `nearest_k` peer does). A learned
"null" logit reads the mean of the readable entries instead (nothing similar). Unreadable
entries (the target's own, the ones hidden this training step) get no weight. A combination sums
its genes' recalls; the set transformer learns the interaction on top.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from vccjax.models import inputs as model_inputs


class MemoryAttention(nn.Module):
  """Returns (recalled log fold changes [B, G], weights [B, K, M + 1]; the last one: null).

  hidden: width of the feature encoder; key_dim: width of queries and keys.
  """
  hidden: int
  key_dim: int = 32
  similarity_init: float = 10.0

  @nn.compact
  def __call__(self, x: model_inputs.ModelInputs):
    encode = nn.Sequential([nn.Dense(self.hidden), nn.gelu, nn.Dense(self.hidden),
                            nn.LayerNorm()], name="feature_encoder")
    query = nn.Dense(self.key_dim, name="query")(encode(x.pert_genes))  # [B, K, D]
    key = nn.Dense(self.key_dim, name="key")(encode(x.memory_keys))  # [B, M, D]
    logits = jnp.einsum("bkd,bmd->bkm", query, key) / jnp.sqrt(self.key_dim)
    scale = self.param("similarity_scale", nn.initializers.constant(self.similarity_init), ())
    logits = logits + scale * x.memory_sim
    readable = jnp.broadcast_to(x.memory_mask[:, None, :], logits.shape)
    logits = jnp.where(readable, logits, -1e9)
    null = self.param("null_logit", nn.initializers.zeros, ())
    logits = jnp.concatenate([logits, jnp.broadcast_to(null, logits.shape[:2] + (1,))], -1)
    weights = nn.softmax(logits, axis=-1)  # [B, K, M + 1]
    w = x.memory_mask.astype(x.memory_lfc.dtype)
    mean = jnp.einsum("bm,bmg->bg", w, x.memory_lfc) / jnp.maximum(w.sum(-1, keepdims=True), 1.0)
    per_gene = (jnp.einsum("bkm,bmg->bkg", weights[..., :-1], x.memory_lfc)
                + weights[..., -1:] * mean[:, None, :])
    return jnp.sum(per_gene * x.pert_gene_mask[..., None], axis=1), weights
