"""Model building blocks: layers, ViT encoder/predictor, positional embeddings, tokenizers."""
