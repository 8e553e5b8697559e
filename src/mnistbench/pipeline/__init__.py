"""The pipeline, defined once, and what drives the orchestrators from it. No torch.

``table`` lists every stage (command, code, data, params, outputs) for the Snakemake rules and
for ``dvc`` (dvc.yaml); ``paths`` names each stage's outputs; ``codedeps`` finds the code a
stage depends on; ``preflight`` checks the inputs while Snakemake parses the workflow;
``scheduling`` shares the cores among train jobs. No stage's code imports this package.
"""
