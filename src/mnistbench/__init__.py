"""mnistbench: train and compare MNIST classifiers reproducibly (Snakemake + DVC + Lightning)."""

__version__ = "0.1.0"
