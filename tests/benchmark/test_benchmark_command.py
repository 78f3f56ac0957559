"""The benchmark command's input checks: every model name is checked before any model trains."""

from conftest import run_module, shared


def test_unknown_model_names_stop_before_anything_runs(tmp_path):
  proc = run_module("vccjax.benchmark", f"--data={shared('vcc_h1_subset.h5ad')}", "--folds=2",
                    "--models=mean_effect,linaer,set_tx,transformer", f"--out={tmp_path / 'out'}",
                    check=False)
  assert proc.returncode == 1, proc.stderr[-2000:]
  line = proc.stderr.strip()
  assert line.startswith("error: --models: unknown model(s) ['linaer', 'transformer']"), line
  assert len(line.splitlines()) == 1
  assert not (tmp_path / "out").exists()
