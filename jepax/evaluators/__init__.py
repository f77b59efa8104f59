"""Evaluators over frozen features: linear probe, k-NN and RankMe (collapse monitor)."""
