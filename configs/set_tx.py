r"""The set transformer on VCC-layout data. Variants via `--config=configs/set_tx.py:VARIANT`.

* `demo` (default; the embedded example): synthetic VCC-layout data written by the project's
  generator into the workdir, 16 training / 4 validation / 4 test targets, 1.5 minutes on 2 idle
  CPU cores; ends with a score table that beats the cell-mean baseline (measured: validation
  overall 23.6, test overall 46.2; DES 0.71 / 0.79).
    python -m vccjax.main --config=configs/set_tx.py:demo --workdir=/tmp/vccjax_demo
* `tiny`: seconds; what the tests run.
    python -m vccjax.main --config=configs/set_tx.py:tiny --workdir=/tmp/vccjax_tiny
* `vcc`: the real challenge files (STATE-sm size: set 128, hidden 672, 4 layers, 8 heads),
  all 18,080 genes out, GO features (pass the annotation file):
    python -m vccjax.main --config=configs/set_tx.py:vcc --workdir=/tmp/vcc \
      --config.data.path=/data/vcc/adata_Training.h5ad \
      --config.features.go_path=/data/go_bp_annotations.tsv.gz
  (needs a GPU/TPU for the full 40k steps: on a 2-core CPU one step takes ~5 s; no score is
  measured here, the real files are not on these machines.)
* `bench`: one config for every real benchmark file (GO, Replogle K562 effects and ESM2
  features from ../shared/data), e.g. 1-2 minutes per file:
    python -m vccjax.benchmark --data=../shared/data/norman19_k562.h5ad --folds=3 --out=/tmp/b
  Starts from the ridge prior and the GO-nearest training effect, gated per target, and flags
  the target genes that read their own measured single (doubles, other cell types); chosen on
  validation targets (`benchmarks/choose_config.py --repeats=3`). Measured with `--repeats=3`:
  overall 10.9 on Norman 2019 singles, 15.5 on Datlinger 2017; Norman's 5 seen doubles 52.8
  (README tables).

Every variant understands `config.data.path`, `config.data.test_targets` and
`config.data.val_targets` (comma-separated target genes; all other targets train), so
`--config=configs/set_tx.py:tiny --config.data.path=F --config.data.test_targets=A,B` trains on
any VCC-layout file. Any field can be overridden with `--config.x.y=v`.
"""

import os

import ml_collections

# Real reference data beside the repository (../shared/data), used by the `bench` variant.
SHARED_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                           "data")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "demo"
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.path = ""  # empty: synthetic data from c.data.synthetic, written into the workdir
  c.data.control_label = "non-targeting"
  c.data.test_targets = ""
  c.data.val_targets = ""
  c.data.test_fraction = 0.0
  c.data.val_fraction = 0.0
  c.data.split_seed = 0
  c.data.few_shot_cells = 0
  c.data.n_hvg = 2000
  # Added to mean normalised counts (UMIs at the median depth) before log fold changes: genes
  # detected in few cells get small changes (the Wilcoxon test has no power on them either).
  c.data.lfc_pseudocount = 1.0
  c.data.backed = "auto"
  c.data.stream = False  # True: read each step's cells from X instead of densifying the inputs
  # Prepared arrays kept per file and settings for the next run, predict, design and benchmark
  # (vccjax.data.prepared_cache); cache_dir "" = $VCCJAX_CACHE_DIR or ~/.cache/vccjax.
  c.data.cache = True
  c.data.cache_dir = ""
  c.data.set_size = 64
  c.data.batch_size = 8
  c.data.max_genes_per_target = 1
  c.data.synthetic = ml_collections.ConfigDict(dict(
      cells=12_000, genes=1_000, targets=24, batches=2, umi=8_000, seed=0))

  c.features = ml_collections.ConfigDict()
  c.features.sources = "control_pca"
  c.features.go_path = ""
  c.features.dim = 32

  c.model = ml_collections.ConfigDict(dict(
      name="set_tx", hidden=128, layers=2, heads=4, mlp_ratio=2, dropout=0.0, decoder_rank=64,
      knockdown=True, memory=False, nearest_prior=0, start_at_prior=False, own_effect=False))

  c.loss = ml_collections.ConfigDict(dict(
      distribution="energy", distribution_weight=1.0, pseudobulk_weight=10.0))

  c.optim = ml_collections.ConfigDict(dict(
      lr=1e-3, warmup_steps=100, weight_decay=1e-4, clip_norm=1.0,
      ridge=0.0))  # ridge prior / linear baseline penalty; <= 0: chosen by leave-one-out

  c.train = ml_collections.ConfigDict(dict(
      steps=1500, log_every=50, eval_every=500, checkpoint_every=250, keep_checkpoints=2,
      memory_hide=0.25,  # episodic training: share of the memory hidden at each step
      # Members trained with their own seeds (init, batches, dropout), each keeping its best
      # validation checkpoint; predictions are the mean of their log fold changes.
      ensemble=1,
      eval_at_start=False))  # True: the untrained model is a validation-chosen candidate too

  c.eval = ml_collections.ConfigDict(dict(
      fdr="global", max_cells_per_target=1000, max_control_cells=2000,
      write_cells=False,  # True: write real/pred/baseline .h5ad of the final evals
      final_val=True))  # False: score only the test targets at the end (the benchmark)

  if variant == "demo":
    c.data.test_fraction = c.data.val_fraction = 4 / 24
  elif variant == "tiny":
    c.data.synthetic.update(cells=1_500, genes=200, targets=10, batches=2, umi=3_000)
    c.data.test_fraction = c.data.val_fraction = 0.2
    c.data.set_size, c.data.batch_size, c.data.n_hvg = 16, 4, 200
    c.model.update(hidden=32, layers=1, heads=2, decoder_rank=16)
    c.features.dim = 8
    c.train.update(steps=20, log_every=5, eval_every=10, checkpoint_every=5)
    c.optim.warmup_steps = 5
    c.eval.update(max_cells_per_target=60, max_control_cells=150)
  elif variant == "vcc":
    c.data.n_hvg = 2000
    c.data.set_size, c.data.batch_size = 128, 8
    c.data.val_fraction = 0.1
    c.features.sources = "control_pca,go"
    c.features.dim = 64
    c.model.update(hidden=672, layers=4, heads=8, mlp_ratio=4, dropout=0.1, decoder_rank=256)
    c.optim.update(lr=3e-4, warmup_steps=1000)
    c.train.update(steps=40_000, log_every=100, eval_every=2_000, checkpoint_every=1_000)
  elif variant == "bench":
    # One config for every benchmark file (selected on validation targets, never per dataset).
    c.data.val_fraction = 0.2
    c.data.set_size, c.data.batch_size = 32, 8
    c.data.max_genes_per_target = 2
    c.features.sources = ",".join([
        "control_pca", "go",
        "file:" + os.path.join(SHARED_DATA, "replogle22_k562_effects.npz"),
        "file:" + os.path.join(SHARED_DATA, "vcc_train_targets_esm2.npz")])
    c.features.go_path = os.path.join(SHARED_DATA, "go_bp_annotations.tsv.gz")
    # Starts from the ridge prior and the GO-nearest training effect, gated per target; the
    # attention memory (model.memory) is off: it did not help (README, "Designs tried").
    c.model.update(hidden=64, layers=1, heads=4, decoder_rank=32, dropout=0.1, memory=False,
                   nearest_prior=1, own_effect=True)
    c.train.update(steps=200, log_every=50, eval_every=50, checkpoint_every=50)
    c.optim.warmup_steps = 50
  else:
    raise ValueError(f"unknown variant {variant!r}: use demo, tiny, vcc or bench")
  return c


# Sweeps: data next to the config. Each `sweep_NAME()` yields one dict of overrides per run:
#   python launch/sweep.py --config=configs/set_tx.py:demo --sweep=NAME --workdir=/tmp/sweep_NAME


def sweep_lr():
  """Peak learning rate of the warm-up + cosine schedule (3 runs)."""
  for lr in (3e-4, 1e-3, 3e-3):
    yield {"optim.lr": lr}


def sweep_loss():
  """Distribution loss (energy distance vs RBF MMD) x weight of the pseudobulk term (6 runs).

  The pseudobulk term fits mean fold changes (MAE, DES); the distribution term fits the cells'
  spread, which the Wilcoxon calls of DES also see.
  """
  for distribution in ("energy", "mmd"):
    for pseudobulk_weight in (1.0, 10.0, 30.0):
      yield {"loss.distribution": distribution, "loss.pseudobulk_weight": pseudobulk_weight}


def sweep_size():
  """Model width and depth, decoder rank half the width (3 runs; heads must divide hidden)."""
  for hidden, layers in ((64, 1), (128, 2), (256, 4)):
    yield {"model.hidden": hidden, "model.layers": layers, "model.decoder_rank": hidden // 2}
