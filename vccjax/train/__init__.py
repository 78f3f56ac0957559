"""Training one run: `loop.train_and_evaluate(config, workdir)`, run by `python -m vccjax.main`.

`loop` trains with periodic evaluation and checkpoints; `steps` holds the pure jitted train and
predict steps and `losses` the distribution losses (energy distance, MMD) on masked sets;
`checkpoint` (the only module that imports orbax) saves, resumes and keeps the best; `sharding`
(the only module that knows meshes) and `distributed` (multi-host start-up) spread training over
devices and hosts; `held_out` scores held-out targets in-process as cell-eval would; `plots`
draws `training.png`.
"""
