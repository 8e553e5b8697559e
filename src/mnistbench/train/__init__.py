"""Training one run (the train and tune rules): ``recipe.train_model`` and what it is made of.

``recipe`` (settings and prepared data in, published checkpoint and metrics out), ``classifier``
(the LightningModule, and its fp32 predictions), ``datamodule``, ``callbacks``, ``averaging``
(SWA/EMA), ``optim``, ``publish`` (which weights are published), ``resume``, ``speed`` and
``speedcache`` (the precision and memory-format probe), ``devices``, ``loggers``, ``tune``.
Imports nothing from evaluate/, reporting/ or use/.
"""
