"""Intent decoding (UI-JEPA): train a small language decoder on a row's frozen video tokens to
state each recording's intent, then score its greedy generations on held-out splits.

The decoder (jepax/models/intent_decoder.py) reads the row's ``outputs`` (per-time-slice video
tokens, (N, P, F)) through one linear projection, has learned positions on the text tokens
only, and is trained with next-word cross-entropy on the intent's words (the video prefix has
no loss). The row's encoder is never updated: the evaluator only sees its outputs. The
vocabulary is the training split's words (lower-cased, split on spaces) plus <pad>, <bos>,
<eos>, <unk>: a word the training intents never use can never be generated, which is the
zero-shot split's difficulty for a decoder trained from scratch (the paper fine-tunes a
pretrained LLM, Phi-3, with LoRA instead).

Metrics of block ``<name>``, for each test split ``s``:
* ``<name>_<s>_rouge1`` / ``_rouge2`` / ``_rougeL``: mean ROUGE F1 of generation vs reference
  (Google's ``rouge-score`` package, its default tokenizer, no stemming);
* ``<name>_<s>_slot_acc``: fraction of generations containing the reference's slot value
  (the intent's parameter: "alice", "dark mode", "9") as whole words;
* ``<name>_<s>_exact``: fraction of generations equal to the reference;
* ``<name>_<s>_samples``: the first ``show`` (reference, generation) pairs.
The paper's intent similarity also averages a sentence-embedding cosine (SBERT); no sentence
embedding model is available offline here, so only ROUGE and slot accuracy are reported.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jepax.config import ConfigError
from jepax.evaluators.base import check, examples_used

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD, BOS, EOS, UNK = range(4)


class IntentDecoder:
    DEFAULTS = dict(outputs="video_tokens", text="intent", slot="slot", train_split="train",
                    train_examples=None, test_splits=("test", "zeroshot"), test_examples=None,
                    width=96, depth=2, heads=4, max_words=12, steps=600, batch_size=64, lr=1e-3,
                    weight_decay=0.01, seed=0, show=5)

    def __init__(self, name, config_block):
        self.name, self.block = name, config_block
        self.every = int(config_block["every"])
        check(name, config_block, nonnegative=("every", "weight_decay", "seed", "show"),
              positive=("train_examples", "test_examples", "width", "depth", "heads",
                        "max_words", "steps", "batch_size", "lr"))
        if config_block["width"] % config_block["heads"]:
            raise ConfigError(f"evals.{name}.width={config_block['width']} must be divisible by "
                              f"evals.{name}.heads={config_block['heads']}")
        if not config_block["test_splits"]:
            raise ConfigError(f"evals.{name}.test_splits is empty: name the held-out splits, "
                              "e.g. ('test', 'zeroshot')")
        self.columns = tuple(f"{name}_{s}_{m}" for s in config_block["test_splits"]
                             for m in ("rouge1", "rouge2", "rougeL", "slot_acc"))

    def check_data(self, data) -> None:
        b = self.block
        examples_used(self.name, b, "train_split", "train_examples", data)
        for split in b["test_splits"]:
            examples_used(self.name, {**b, "split": split}, "split", "test_examples", data)
            for key in (b["text"], b["slot"]):
                if key not in data.keys(split):
                    raise ConfigError(f"evals.{self.name}: the {split!r} examples have no "
                                      f"{key!r} (they have {sorted(data.keys(split))})")

    def evaluate(self, row):
        b = self.block
        train = row.data(b["train_split"], b["train_examples"])
        if b["outputs"] not in train:
            return {}
        vocab = Vocabulary(train[b["text"]])
        tests = {split: row.data(split, b["test_examples"]) for split in b["test_splits"]}
        # The decoder is small: it trains on this process's default device, outside the
        # training mesh (whose logical axis names its layers would otherwise need).
        with jax.set_mesh(None):
            params, decoder = fit(train[b["outputs"]],
                                  vocab.encode(train[b["text"]], b["max_words"]), len(vocab), b)
            generations = {split: vocab.decode(generate(decoder, params, test[b["outputs"]],
                                                        b["max_words"]))
                           for split, test in tests.items()}
        metrics = {}
        for split, test in tests.items():
            generated = generations[split]
            references = [str(t) for t in test[b["text"]]]
            scores = intent_scores(references, generated, [str(s) for s in test[b["slot"]]])
            metrics.update({f"{self.name}_{split}_{k}": v for k, v in scores.items()})
            metrics[f"{self.name}_{split}_samples"] = [
                {"intent": r, "generated": g} for r, g in zip(references, generated)][:b["show"]]
        return metrics


class Vocabulary:
    """Word-level vocabulary of the training intents."""

    def __init__(self, texts):
        words = sorted({w for t in texts for w in str(t).lower().split()})
        self.words = list(SPECIALS) + words
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, texts, max_words: int) -> np.ndarray:
        """(N, max_words + 2): <bos> words... <eos> <pad>...; longer intents are cut."""
        out = np.full((len(texts), max_words + 2), PAD, np.int32)
        for i, text in enumerate(texts):
            ids = [self.index.get(w, UNK) for w in str(text).lower().split()][:max_words]
            out[i, :len(ids) + 2] = [BOS, *ids, EOS]
        return out

    def decode(self, ids: np.ndarray) -> list[str]:
        texts = []
        for row in ids:
            words = []
            for i in row:
                if i == EOS:
                    break
                if i not in (PAD, BOS):
                    words.append(self.words[i])
            texts.append(" ".join(words))
        return texts


def _decoder(feature_dim, vocab, max_len, block):
    from jepax.models.functional import Functional
    from jepax.models.intent_decoder import IntentDecoder as Model

    return Functional(lambda rngs: Model(feature_dim, vocab, max_len, dim=block["width"],
                                         depth=block["depth"], heads=block["heads"], rngs=rngs))


def fit(video_tokens, tokens, vocab_size, block):
    """Train the decoder on (video tokens, encoded intents); loss on the intent's words only
    (every position after <bos> up to and including <eos>). Returns (params, decoder)."""
    video_tokens = np.asarray(video_tokens, np.float32)
    if video_tokens.ndim == 2:
        video_tokens = video_tokens[:, None]
    decoder = _decoder(video_tokens.shape[-1], vocab_size, tokens.shape[1], block)
    key = jax.random.key(block["seed"])
    params = jax.jit(decoder.init)(key)
    opt = optax.adamw(optax.cosine_decay_schedule(block["lr"], block["steps"]),
                      weight_decay=block["weight_decay"])
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, video, text):
        def loss_fn(p):
            logits = decoder(p, video, text[:, :-1])
            return word_loss(logits, text[:, 1:])
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(block["seed"])
    n, batch = len(tokens), min(block["batch_size"], len(tokens))
    for _ in range(block["steps"]):
        pick = rng.choice(n, batch, replace=False)
        params, opt_state, _ = step(params, opt_state, video_tokens[pick], tokens[pick])
    return params, decoder


def word_loss(logits, targets):
    """Mean next-word cross-entropy over the intent's tokens (padding excluded)."""
    mask = (targets != PAD).astype(jnp.float32)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
    return (nll * mask).sum() / mask.sum()


def generate(decoder, params, video_tokens, max_words: int, batch: int = 256) -> np.ndarray:
    """Greedy decoding: (N, max_words + 1) word ids after <bos> (read up to <eos>)."""
    video_tokens = np.asarray(video_tokens, np.float32)
    if video_tokens.ndim == 2:
        video_tokens = video_tokens[:, None]
    length = max_words + 1

    @jax.jit
    def greedy(params, video):
        text = jnp.full((video.shape[0], length), PAD, jnp.int32).at[:, 0].set(BOS)

        def body(i, text):  # causal: positions after i do not change position i's logits
            logits = decoder(params, video, text)
            return text.at[:, i + 1].set(jnp.argmax(logits[:, i], axis=-1).astype(jnp.int32))
        return jax.lax.fori_loop(0, length - 1, body, text)

    out = [np.asarray(greedy(params, video_tokens[i:i + batch]))
           for i in range(0, len(video_tokens), batch)]
    return np.concatenate(out)[:, 1:]


def intent_scores(references, generated, slots) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1, slot accuracy and exact match of `generated` against `references`."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    sums = dict(rouge1=0.0, rouge2=0.0, rougeL=0.0)
    for ref, gen in zip(references, generated):
        for k, score in scorer.score(ref, gen).items():
            sums[k] += score.fmeasure
    n = len(references)
    slot_hits = sum(f" {s.lower()} " in f" {g.lower()} " for s, g in zip(slots, generated))
    exact = sum(r.lower().split() == g.lower().split() for r, g in zip(references, generated))
    return {**{k: v / n for k, v in sums.items()}, "slot_acc": slot_hits / n, "exact": exact / n}
