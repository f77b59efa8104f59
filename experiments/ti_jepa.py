"""TI-JEPA on captioned emoji scenes: text-conditioned I-JEPA for multimodal sentiment.

Reproduces the TI-JEPA recipe (Vo et al., 2025; official code's ``train``): a frozen I-JEPA
image encoder and a frozen text encoder; trainable text-to-image cross-attention blocks (image
tokens query the caption's tokens) whose EMA (0.996 -> 1.0) is the target; I-JEPA's predictor
and multi-block masks (4 targets of scale 0.15-0.2); smooth-L1 against the layer-normed target
features at the target patches; masks applied to the frozen encoder's output tokens
(``mask.placement='after_encoder'``, the official code; ``'before_encoder'`` encodes only the
context patches). Downstream: a linear classifier of positive / neutral / negative on the
target crosser's features averaged over image tokens.

What differs from the paper, and why:
* data: the paper pretrains on COCO-style image-caption pairs and evaluates on MVSA-Single /
  MVSA-Multiple (tweets); neither can be downloaded here. Pretraining uses every emoji the Noto
  Color Emoji font draws with its CLDR name plus the training scenes; evaluation uses generated
  scenes (a face and a weather emoji + a templated caption with negation) labelled by MVSA's own
  merging rule (data_pipelines/emoji_scenes.py). The MVSA loader is there for users who have the
  files (``--config.data.dataset=mvsa --config.data.path=...``);
* encoders: the paper's image encoder is the released I-JEPA ViT-H and its text encoder a
  pretrained language model; here the image encoder is an I-JEPA jepax trains on these images
  first and the text encoder a small transformer pretrained with masked words on the captions
  (experiments/text_mlm.py); no pretrained language model can be downloaded here;
* sizes: crosser 96 wide, 2 blocks (official: 768-1024 wide, 4 blocks); images 48 px, patch 6;
* downstream: the paper fine-tunes a classifier; here a linear probe on frozen features (the
  task asks for it, and it is what separates the rows cleanly).

Results of the default config, scripts/ti_jepa_chain.py (pretrains the image and text encoders,
then TI-JEPA, then records this table), on a shared 2-core CPU:
    <results>
    | outputs (step 1200) | RankMe | sentiment_acc | sentiment_acc_noise_images | sentiment_acc_shuffled_captions | sentiment_macro_f1 |
    | --- | --- | --- | --- | --- | --- |
    | pretrained | 4.8 | 0.572 | 0.386 | 0.530 | 0.448 |
    | random init | 5.3 | 0.581 | 0.369 | 0.471 | 0.529 |
    | concatenated unimodal | 14.6 | 0.703 | 0.411 | 0.437 | 0.700 |
    | image encoder only | 3.1 | 0.523 | 0.344 | 0.523 | 0.405 |
    | text encoder only | 14.5 | 0.636 | 0.636 | 0.339 | 0.641 |

    1200 steps of batch 64 in 22.8 min of training on x86_64 (AMD EPYC, 2 cores); evaluation: sentiment on at most 6000 train_examples, at most 2000 test_examples; rankme on at most 2000 examples.
    </results>

The frozen image encoder (I-JEPA on the scenes' images; linear probe of the sentiment from the
image alone):
    <results:image_encoder>
    | outputs (step 1200) | linear probe acc | RankMe |
    | --- | --- | --- |
    | pretrained | 0.523 | 3.1 |
    | random init | 0.473 | 3.3 |
    | raw pixels | 0.508 | 457.8 |

    1200 steps of batch 64 in 23.9 min of training on x86_64 (AMD EPYC, 2 cores); evaluation: linear_probe on at most 6000 train_examples, at most 2000 test_examples; rankme on at most 2000 examples.
    </results:image_encoder>

Reading it. TI-JEPA's fused features do not beat the random-init crosser on the same frozen
encoders (accuracy 0.572 vs 0.581, macro-F1 0.448 vs 0.529), and both lose clearly to the
concatenated pooled features of the two frozen encoders (0.703 / 0.700): at this scale the
cross-attention pretraining adds nothing a linear probe can use. The fusion check holds:
shuffling the captions lowers TI-JEPA's accuracy to 0.530 and noise images to 0.386, so its
features depend on both modalities. The frozen encoders are the weak link: the I-JEPA image
encoder probes 0.523 against 0.473 at random init and 0.508 from raw pixels, and the masked-word
text encoder probes worse than its own random init (0.632 vs 0.766; bag of words 0.793,
experiments/text_mlm.py), so better frozen encoders come before any conclusion about the
crosser. The chain took 62 min on the shared machine (load 6-10, about one core): image encoder
23.9 min + 3.4 min evaluation, text encoder 4.6 min, TI-JEPA 22.8 min + 4.8 min evaluation.

The paper (MVSA tweets, fine-tuned classifier; context only: other data, other encoders):
    <paper>
    | TI-JEPA-Large | accuracy | F1 |
    | --- | --- | --- |
    | MVSA-Single | 76.75 | 74.62 |
    | MVSA-Multiple | 77.55 | 75.02 |
    </paper>

Commands:
    # the whole chain (image encoder, text encoder, TI-JEPA, results table), resumable
    python scripts/ti_jepa_chain.py
    # TI-JEPA alone, on encoders trained before (or yours: see docs/ti_jepa.md)
    python -m jepax.main --config=experiments/ti_jepa.py --workdir=runs/ti_jepa/ti_jepa \
        --config.model.image_encoder=runs/ti_jepa/image_encoder \
        --config.model.text_encoder=runs/ti_jepa/text_encoder
    # about a minute on 2 CPU cores (random frozen encoders, a small copy of the data)
    python -m jepax.main --config=experiments/ti_jepa.py:tiny --workdir=runs/ti_jepa_tiny
"""

from pathlib import Path

from data_pipelines.emoji_scenes import data_section
from jepax import evaluators
from jepax.config import base_config, finalize, load_config, parse_preset

LEADERBOARD = {"metric": "sentiment_acc",
               "paper": "MVSA-Single 76.75 / MVSA-Multiple 77.55 acc (other data, fine-tuned)"}
CHAIN = "runs/ti_jepa"
IMAGE = dict(image_size=48, channels=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def get_config(arg=None):
    if arg in ("image_encoder", "image_encoder_tiny"):
        return image_encoder_config(tiny=arg.endswith("_tiny"))
    c = base_config()
    c.name = c.variant = "ti_jepa"
    c.model = dict(
        # The frozen encoders: a jepax I-JEPA run's workdir (or an official I-JEPA .pth.tar, or
        # 'random'), and a text_mlm run's workdir (or 'random').
        image_encoder=f"{CHAIN}/image_encoder", text_encoder=f"{CHAIN}/text_encoder",
        # For a .pth.tar or 'random': the I-JEPA config and architecture to build it with.
        image_encoder_config="experiments/ijepa.py",
        image=dict(patch_size=6, width=96, depth=4, heads=4, mlp_ratio=4.0),
        text=dict(vocab_size=2048, width=64, depth=2, heads=4, mlp_ratio=4.0, attention="auto"),
        frozen_seed=0,
        # The trainable parts: crosser (official: hidden 768-1024, 4 blocks, 8 heads) and
        # predictor.
        width=96, depth=2, heads=4, mlp_ratio=4.0,
        pred_width=48, pred_depth=2, pred_heads=4, attention="auto",
    )
    c.data = data_section(image_mean=IMAGE["mean"], image_std=IMAGE["std"])
    c.mask = dict(
        placement="after_encoder",  # after_encoder (official) | before_encoder
        num_targets=4, target_scale=(0.15, 0.2), target_aspect=(0.75, 1.5),
        context_scale=(0.85, 1.0), context_aspect=(1.0, 1.0), min_context=4,
        allow_overlap=False, official=False, context_capacity=None, target_capacity=None,
        pad_multiple=1)
    c.train.update(steps=1200, batch_size=64, checkpoint_every=400)
    c.optim.update(lr=5e-4, start_lr=5e-5, warmup_steps=120)
    c.evals = dict(
        sentiment=evaluators.block("fusion_check", train_examples=6000, test_examples=2000),
        rankme=evaluators.block("rankme", examples=2000))
    preset = parse_preset(arg, {"tiny": _tiny, "random_encoders": _random_encoders})
    if preset:
        preset(c)
    return finalize(c)


def image_encoder_config(tiny: bool = False):
    """`:image_encoder`: the I-JEPA run whose target encoder TI-JEPA freezes, i.e.
    experiments/ijepa.py on the scenes' training images (48 px, patch 6: an 8 x 8 grid), with a
    linear probe of the image-only sentiment. `:image_encoder_tiny`: seconds, for CI's chain."""
    c = load_config(str(Path(__file__).with_name("ijepa.py")))
    with c.unlocked():
        c.name = "ti_jepa_image_encoder"
        c.data.update(data_section(**IMAGE))
        # The paper's targets: the recorded TI-JEPA table was measured with them.
        c.model.update(patch_size=6, width=96, depth=4, heads=4, pred_width=48, pred_depth=2,
                       pred_heads=4, target_norm="layer")
        c.train.update(steps=1200, batch_size=64, checkpoint_every=400)
        c.optim.update(lr=5e-4, start_lr=5e-5, warmup_steps=120)
        c.evals = dict(
            linear_probe=evaluators.block("linear_probe", train_examples=6000,
                                          test_examples=2000),
            rankme=evaluators.block("rankme", examples=2000))
        if tiny:
            c.data.generate.update(train=300, test=100, emoji=100)
            c.model.update(width=32, depth=1, heads=2, pred_width=16, pred_depth=1, pred_heads=2)
            c.train.update(steps=10, batch_size=16, log_every=5, checkpoint_every=10)
            c.optim.update(warmup_steps=2)
            c.eval.evaluators = ()
    return c


def _random_encoders(c):
    """The default TI-JEPA stage on random frozen encoders of the chain's sizes: what
    benchmarks/cpu.sh times (the same step cost, without training the encoders first)."""
    c.model.update(image_encoder="random", text_encoder="random")


def _tiny(c):
    """About a minute on 2 CPU cores: random frozen encoders, a small copy of the data."""
    c.model.update(image_encoder="random", text_encoder="random", width=32, depth=1, heads=2,
                   pred_width=16, pred_depth=1, pred_heads=2)
    c.model.image.update(width=32, depth=1, heads=2)
    c.model.text.update(width=32, depth=1, heads=2)
    c.data.generate.update(train=300, test=100, emoji=100)
    c.train.update(steps=30, batch_size=16, log_every=5, checkpoint_every=15)
    c.optim.update(lr=1e-3, start_lr=1e-4, warmup_steps=5)
    c.evals.sentiment.update(train_examples=300, test_examples=100, steps=100)
    c.evals.rankme.examples = 100
