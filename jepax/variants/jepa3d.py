"""3D-JEPA (Hu et al., 2024): JEPA on point-cloud patches with multi-block sampling and a
context-aware decoder.

* tokens, encoder, teacher, loss: as Point-JEPA (jepax.variants.point_family), without the
  sequencer; positions are added once before the first block (Point-MAE's encoder, which the
  paper builds on) unless ``model.pos_every_layer``;
* masks (data_pipelines/masks/spatial_blocks.py): 4 target blocks, each the patches nearest to a
  random patch centre (ratio 0.15-0.2 of the patches), and a context block (ratio 0.85-1.0)
  with every target patch removed, drawn per cloud on the device from the patch centres;
* predictor: the context-aware decoder (jepax.models.point_transformer.ContextAwareDecoder):
  the encoder's context features enter every decoder layer; ``model.predictor='plain'`` is the
  ablation with an I-JEPA style predictor that sees the context only at its input;
* evaluation: the student encoder, as Point-JEPA (the paper does not say).

No official code exists: the decoder design, the block shapes and the loss (smooth-L1 on
layer-normed targets; ``model.loss='cosine'`` for a cosine-similarity objective) are this
project's reading of the paper, documented in docs/point_jepa.md.
"""

from __future__ import annotations

from data_pipelines.masks.spatial_blocks import SpatialBlocks
from jepax import flops
from jepax.config import ConfigError
from jepax.models.point_transformer import ContextAwareDecoder, PointPredictor
from jepax.variants.point_family import PointFamily

PREDICTORS = {"context_aware": ContextAwareDecoder, "plain": PointPredictor}


class JEPA3D(PointFamily):
    mask_class = SpatialBlocks

    def __init__(self, config):
        if config.model.predictor not in PREDICTORS:
            raise ConfigError(f"model.predictor={config.model.predictor!r}: use one of "
                              f"{sorted(PREDICTORS)}")
        self.predictor_class = PREDICTORS[config.model.predictor]
        super().__init__(config)

    def masks(self, batch, centres, rng):
        return self.blocks(rng, centres)

    def predictor_layers_flops(self, batch, c, n_t, t):
        if self.predictor_class is PointPredictor:
            return super().predictor_layers_flops(batch, c, n_t, t)
        m = self.config.model  # a context projection and a query-only block per layer
        return m.pred_depth * (flops.linear(batch * c, m.width, m.pred_width)
                               + flops.transformer(batch * n_t, c + t, m.pred_width, 1,
                                                   m.mlp_ratio, outputs=t))
