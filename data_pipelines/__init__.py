"""grain data pipelines: sources per modality, host transforms and mask samplers."""
