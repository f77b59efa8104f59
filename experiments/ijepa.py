"""I-JEPA on Fashion-MNIST: the framework's baseline.

Reproduces the I-JEPA recipe (Assran et al., CVPR 2023): multi-block masking (4 targets of scale
0.15-0.2, aspect 0.75-1.5; one context block of scale 0.85-1.0 with the targets removed), ViT
context encoder, narrow predictor, EMA target with layer-normed outputs, smooth-L1 loss, AdamW
(warmup + cosine lr, cosine weight decay 0.04 -> 0.4, EMA 0.996 -> 1.0). The paper reports 75.3%
ImageNet linear-probe top-1 for ViT-H/14 after 300 epochs; here the same recipe runs on the real
Fashion-MNIST files (28x28 grayscale, patch 4 -> a 7x7 grid) on a 2-core CPU, with one departure
(below): the targets are standardized over the batch (`model.target_norm='layer_batch'`);
`--config.model.target_norm=layer` is the paper's recipe.

Results of the default config (frozen, average-pooled target-encoder features; "centred rank"
is RankMe of the features minus their mean, "spread" their std across images over their RMS;
recorded by `python scripts/record_results.py --workdir=runs/ijepa --into=experiments/ijepa.py`,
the plot of the 10k-image probe against minutes of training by `python scripts/plot_results.py
--workdir=runs/ijepa --curve=probe_10k_acc`; both in results/ijepa/):
    <results>
    | outputs (step 4000) | linear probe acc | k-NN acc | RankMe | centred rank | spread | probe_10k_acc |
    | --- | --- | --- | --- | --- | --- | --- |
    | pretrained | 0.809 | 0.770 | 22.3 | 25.8 | 0.71 | 0.807 |
    | random init | 0.687 | 0.484 | 1.6 | 6.5 | 0.05 | 0.687 |
    | raw pixels | 0.841 | 0.846 | 343.0 | 410.1 | 0.60 | 0.794 |

    4000 steps of batch 128 in 34.9 min of training on x86_64 (Intel(R) Xeon(R) Processor, 2 cores); evaluation: collapse on at most 10000 examples; linear_probe on at most 60000 train_examples, at most 10000 test_examples; knn on at most 60000 train_examples, at most 10000 test_examples; rankme on at most 60000 examples; probe_10k on at most 10000 train_examples, at most 5000 test_examples.
    </results>

Reading it: pretraining beats the same encoder at random init by 12 points of linear probe and
29 of k-NN, and uses many more dimensions (centred rank 25.8 vs 6.5), but raw pixels still win
both: by 3.2 points of probe and 7.6 of k-NN. On 10k training images the probe passes the
pixels' after about 18 minutes (0.807 vs 0.794 at the end); the pixels gain more from 60k
images (0.841) than the 128 pooled features do (0.809). The probe is still rising at 4000
steps (+0.4 points over the last 500), so more training is the next lever; k-NN is the
harder target. The run's 34.9 minutes include about 5 when tests shared the cores at low
priority (0.53 s per step idle). Recipe search, every row a full-length run on the same 2-core machine (`python
scripts/record_results.py --recipes runs/ijepa_paper1700 runs/ijepa_lb1700 runs/ijepa
--default=experiments/ijepa.py --into=experiments/ijepa.py --tag=recipes`):
    <results:recipes>
    | recipe | steps | train min | linear probe | k-NN | RankMe | centred rank |
    | --- | --- | --- | --- | --- | --- | --- |
    | train.steps=1700, model.target_norm=layer | 1700 | 25.6 | 0.779 | 0.712 | 4.9 | 9.5 |
    | train.steps=1700 | 1700 | 14.7 | 0.795 | 0.738 | 9.4 | 12.9 |
    | default | 4000 | 34.9 | 0.809 | 0.770 | 22.3 | 25.8 |
    | random init | | | 0.687 | 0.484 | 1.6 | 6.5 |
    | raw pixels | | | 0.841 | 0.846 | 343.0 | 410.1 |

    Pretrained rows: frozen target-encoder features; machine: Intel(R) Xeon(R) Processor, 2 cores.
    </results:recipes>
(The paper-recipe run shared the cores with a CI run: its 25.6 minutes are ~15 on idle cores.)

The departure, and why it is the default: with the paper's LayerNorm alone the target encoder
drifts toward what every image shares at a token (RankMe 4.9 at 1700 steps above; 3.1 in an
earlier run of it on an older, slower build: probe 0.767, k-NN 0.699), which the predictor can
match without looking at the context. Standardizing each (token, dimension) of the targets
over the batch removes that shared part from the loss (the same switch as Brain-JEPA's,
jepax/variants/jepa.py); at 1700 steps it raises the probe by 1.6 points, k-NN by 2.6, RankMe
from 4.9 to 9.4 and the centred rank from 9.5 to 12.9, and the longer default adds 1.4 and 3.2
points more.
Earlier short screens (400 steps, paper targets, 10k/5k probe images): lr 2.5e-4 73.7%, 1e-4
71.9%, 5e-4 69.4%; EMA start 0.99 73.7%, 0.999 70.5%; a deeper predictor 71.1%. Readouts at 600
steps (10k/5k images): concatenating the last 4 layers, avg + max pooling, 2x2 spatial pooling
or all tokens flattened lift pretrained and random init alike, never one above the other by
more than 3 points; the average pool of the last layer stays the readout.

Commands:
    # single host (all local devices; default data from the Debian package dataset-fashion-mnist)
    python -m jepax.main --config=experiments/ijepa.py     # ~35 min of training, ~4 of evaluation
    # about a minute on 2 CPU cores
    python -m jepax.main --config=experiments/ijepa.py:tiny --workdir=runs/ijepa_tiny
    # two processes on one machine (run each line in its own shell)
    python -m jepax.main --config=experiments/ijepa.py --config.distributed.mode=explicit \
        --config.distributed.coordinator_address=127.0.0.1:12345 \
        --config.distributed.num_processes=2 --config.distributed.process_id=0
    python -m jepax.main ... --config.distributed.process_id=1
    # TPU pod slice: same command on every worker; the runtime is detected automatically
    gcloud compute tpus tpu-vm ssh $TPU --zone=$ZONE --worker=all --command \
        "cd jepax && python -m jepax.main --config=experiments/ijepa.py \
         --config.distributed.mode=auto --config.mesh.fsdp=-1 --config.mesh.data=1 \
         --workdir=gs://BUCKET/ijepa"
"""

from jepax import evaluators
from jepax.config import any_type, base_config, finalize, parse_preset

# jepax.bench: the headline metric; the paper reports ImageNet, nothing comparable here.
LEADERBOARD = {"metric": "linear_probe_acc", "paper": "n/a (paper: ImageNet-1k)"}


def get_config(arg=None):
    c = base_config()
    c.name = "ijepa"
    c.variant = "ijepa"
    # Sized for the 30-minute CPU budget (ViT-Ti-like width, 7x7 tokens); see the docstring.
    c.model = dict(
        patch_size=4, width=128, depth=4, heads=4, mlp_ratio=4.0,
        pred_width=64, pred_depth=2, pred_heads=2,
        # A departure (docstring): the targets standardized over the batch, 'layer' the paper's.
        target_norm="layer_batch",  # layer | layer_batch | layer_center (jepax/variants/jepa.py)
        dtype="float32",
        attention="auto",         # auto (einsum on CPU, xla elsewhere) | einsum | xla | cudnn
        remat=False,              # recompute each block in the backward pass (large ViTs)
        scan_layers="auto",       # one scanned block for stacks >= 8 deep (compile time)
    )
    c.data.update(
        dataset="fashion_mnist",  # fashion_mnist | image_folder | tfds | procedural
        path="",                  # fashion_mnist: IDX folder (default: Debian package's)
        tfds_name="", data_dir="",
        image_size=28, channels=1,
        mean=(0.2860,), std=(0.3530,),
        crop_scale=(0.3, 1.0), hflip=True,
        procedural_size=2000,
        # One reader thread: the per-example transforms hold the GIL, so a second thread only
        # contends with the train loop (ijepa.py:tiny on 2 cores: data wait 3-4% with 1 thread,
        # 7% with 2). Scale out with worker processes (num_workers) on many-core hosts.
        num_threads=1, prefetch=4, num_workers=0,
    )
    c.mask = dict(
        num_targets=4, target_scale=(0.15, 0.2), target_aspect=(0.75, 1.5),
        context_scale=(0.85, 1.0), context_aspect=(1.0, 1.0),
        min_context=10, allow_overlap=False,
        official=False,           # True: the reference collator's semantics (see masks/multiblock.py)
        # None: exact maximum (never truncate) | 'auto': 99th percentile | an int
        context_capacity=any_type("auto"), target_capacity=any_type(None), pad_multiple=1,
    )
    c.train.steps = 4000
    c.train.batch_size = 128
    c.train.checkpoint_every = 250
    # The paper's lr 1e-3 is for batch 2048; at batch 128 it collapses the features faster
    # (400-step probe sweep on this config: 2.5e-4 > 1e-4 > 5e-4; EMA 0.996 >= 0.99 > 0.999).
    c.optim.update(lr=2.5e-4, start_lr=2.5e-5, warmup_steps=170)
    # Frozen target-encoder features on Fashion-MNIST: all 60k training images, the 10k test set.
    c.evals = dict(
        # The centred features' effective rank, to tell low rank from a large shared offset.
        collapse=evaluators.block("collapse", examples=10000),
        linear_probe=evaluators.block("linear_probe", train_examples=60000, test_examples=10000),
        knn=evaluators.block("knn", train_examples=60000, test_examples=10000),
        rankme=evaluators.block("rankme", examples=60000),
        # Probe accuracy vs training time (scripts/record_results.py plots it): 10k/5k images.
        probe_10k=evaluators.block("linear_probe", every=250, train_examples=10000,
                                   test_examples=5000),
    )

    preset = parse_preset(arg, {"tiny": _tiny})
    if preset:
        preset(c)
    return finalize(c)


def _tiny(c):
    """About a minute on 2 CPU cores."""
    c.model.update(width=64, depth=2, heads=2, pred_width=32, pred_depth=2, pred_heads=2)
    c.train.update(steps=60, batch_size=32, log_every=10, checkpoint_every=30)
    # A minute of training needs the larger step size to show learning (loss falls ~15%).
    c.optim.update(lr=1e-3, start_lr=1e-4, warmup_steps=10)
    c.evals.linear_probe.update(train_examples=2000, test_examples=1000, steps=100)
    c.evals.knn.update(train_examples=2000, test_examples=1000)
    c.evals.rankme.examples = 2000
    c.evals.collapse.examples = 1000
    c.evals.probe_10k.update(every=30, train_examples=2000, test_examples=1000, steps=100)
