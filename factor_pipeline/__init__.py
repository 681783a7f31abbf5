"""factor-pipeline: the GAN_GRU monthly stock-selection factor as a Dagster pipeline (see README.md)."""
