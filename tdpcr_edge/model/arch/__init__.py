"""The baselines TDP-CR is compared with, written from their papers (one module each; their
rows are in ``model.registry``)."""
