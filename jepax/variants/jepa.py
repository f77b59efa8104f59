"""What every encoder + predictor JEPA variant shares: parameters ``{"encoder", "predictor"}``
built from two ``Functional`` modules, the target an EMA of the encoder, data from the sources
registry by ``config.data``, evaluation on the EMA target encoder."""

from __future__ import annotations

import jax

from data_pipelines import sources


class EncoderPredictorJEPA:
    """Mixin: the subclass sets ``self.config``, ``self.encoder`` and ``self.predictor``."""

    transfer_paths = ("params/encoder", "target")

    def init_params(self, key):
        k_enc, k_pred = jax.random.split(key)
        return {"encoder": self.encoder.init(k_enc), "predictor": self.predictor.init(k_pred)}

    def param_specs(self, mesh, rules):
        return {"encoder": self.encoder.specs(mesh, rules),
                "predictor": self.predictor.specs(mesh, rules)}

    @staticmethod
    def ema_source(params):
        """The target encoder is an EMA of the context encoder."""
        return params["encoder"]

    def train_source(self):
        return sources.get(self.config.data, "train")

    def eval_source(self, split):
        return sources.get(self.config.data, split)

    @staticmethod
    def eval_params(params, target):
        """Downstream evaluation reads the frozen EMA target encoder, as the papers do."""
        return target
