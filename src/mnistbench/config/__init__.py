"""The config: loaded, checked and expanded into runs. No torch, and nothing of the stages.

``load`` merges the config files and validates them against ``config.schema.yaml`` (every key's
description and its one default); ``checks`` and ``datasets`` check what the schema cannot;
``runs`` expands ``only``, ``seeds``, sweeps and ensembles into runs; ``keys`` reads dotted keys.
"""
