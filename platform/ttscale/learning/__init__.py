"""Search, then learn: step-level training data from stored search trees, and a reward head
trained on a frozen backbone's hidden states (the `learned:PATH` verifier).

- `labels`: each step prefix of each stored tree, labelled from the candidates below it
  (Math-Shepherd's hard and soft estimates), from frames the store's readers return (pure);
- `rollout_plan`: which step prefixes get roll-outs (too few candidates below) and the `rollout`
  cells that sample them with their source cells' settings (pure; `ttscale.rollouts` runs them);
- `split`: train/validation/test by a stable hash of the problem id (pure);
- `dataset`: the step dataset as Parquet plus its card, written and read back;
- `features`: hidden states at each step's end, each distinct solution encoded once, cached;
- `head`: logistic regression or a one-hidden-layer MLP in numpy, and its metrics (`metrics`);
- `training`: `train_verifier`, features → heads → the best on validation → a model folder;
- `reward_model`: the model folder (config, head, metrics, card), its fingerprint and loading;
- `model_card`: a stored `learned:PATH@FINGERPRINT`'s metrics and data card, read for the
  dashboard only under the model cache or `$TTSCALE_HOME` and only when the fingerprint matches.

The store is read by the CLI (`ttscale learn dataset`); this package never imports it.
"""
