"""S-JEPA's downstream evaluation: the paper's three classification heads, each by linear
probing (encoder frozen) and by full fine-tuning, with within-subject cross-validation on the
held-out subjects' labelled epochs; and the classical baselines EEG people use.

Heads (jepax/models/s_jepa.py, braindecode's SignalJEPA_Contextual / _PostLocal / _PreLocal):
* contextual: transformer outputs -> spatial filter over channels -> linear;
* post_local: local (conv) features -> spatial filter -> linear;
* pre_local: spatial filter on the raw signals -> local encoder -> linear.
'probe' trains the head only (the spatial filter and the linear layer); 'finetune' trains the
head and the encoder parts it uses. A row with parameters (pretrained, random init) gets every
head x mode; a row without (the variant's baseline) gets the classical pipeline per task:
CSP (6 components, log-variance) + LDA for motor imagery, xDAWN (2 filters per class) +
shrinkage LDA for ERPs.

Per task (a split of the variant's eval source yielding 'eeg', 'label', 'subject') and subject:
stratified `folds`-fold cross-validation; all subjects x folds train at once (vmapped, padded
to one size); the score (accuracy, or ROC-AUC of class 1) is averaged over folds, then
subjects. Columns: '<task>_<head>_<mode>' and '<task>_classical'.
"""

from __future__ import annotations

import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from data_pipelines.errors import DataError
from jepax.evaluators.base import check
from jepax.evaluators.linear_probe import minimize_lbfgs
from jepax.models import s_jepa as model

log = logging.getLogger("jepax")
MODES = ("probe", "finetune")
CLASSICAL = ("csp_lda", "xdawn_lda")


class EEGDownstream:
    DEFAULTS = dict(
        tasks=("mi", "erp"), metrics=("accuracy", "roc_auc"), classical=("csp_lda", "xdawn_lda"),
        heads=model.HEADS, modes=MODES, folds=5, filters=4,
        probe_steps=200, probe_weight_decay=1e-2, finetune_epochs=20, finetune_lr=3e-4,
        weight_decay=1e-2, batch_size=32, attention_heads=8, dropout=0.1, seed=0)

    def __init__(self, name, config_block):
        b = self.block = config_block
        self.every = int(b["every"])
        check(name, b, positive=("folds", "filters", "probe_steps", "finetune_epochs",
                                 "batch_size", "finetune_lr"),
              nonnegative=("every", "weight_decay", "probe_weight_decay"))
        if not len(b["tasks"]) == len(b["metrics"]) == len(b["classical"]):
            raise ValueError(f"evals.{name}: tasks, metrics and classical need one entry each")
        bad = ([m for m in b["metrics"] if m not in ("accuracy", "roc_auc")]
               + [h for h in b["heads"] if h not in model.HEADS]
               + [m for m in b["modes"] if m not in MODES]
               + [c for c in b["classical"] if c not in CLASSICAL])
        if bad:
            raise ValueError(f"evals.{name}: unknown {bad}; metrics accuracy|roc_auc, heads "
                             f"{model.HEADS}, modes {MODES}, classical {CLASSICAL}")
        self.columns = tuple(f"{t}_{h}_{m}" for t in b["tasks"] for h in b["heads"]
                             for m in b["modes"]) + tuple(f"{t}_classical" for t in b["tasks"])

    def evaluate(self, row):
        b, out = self.block, {}
        for task, metric, classical in zip(b["tasks"], b["metrics"], b["classical"]):
            try:
                data = row.data(task, None)
            except DataError as e:
                log.warning("downstream task %r skipped: %s", task, e)
                continue
            splits = folds(data["subject"], data["label"], b["folds"], b["seed"])
            if row.params is None:
                out[f"{task}_classical"] = classical_score(classical, data, splits, metric)
                continue
            encoder = jax.device_get(row.params)
            for head in b["heads"]:
                for mode in b["modes"]:
                    t0 = _now()
                    score = self.head_score(head, mode, encoder, data, splits, metric)
                    out[f"{task}_{head}_{mode}"] = score
                    log.info("%s %s %s %s: %s %.3f (%.0fs)", row.name, task, head, mode, metric,
                             score, _now() - t0)
        return out

    def head_score(self, head, mode, encoder, data, splits, metric) -> float:
        b = self.block
        x, y = jnp.asarray(data["eeg"], jnp.float32), jnp.asarray(data["label"])
        classes = int(data["label"].max()) + 1
        channels, tokens = x.shape[1], model.tokens_per_channel(x.shape[2])
        kw = dict(heads=b["attention_heads"])
        used = encoder if head == "contextual" else {"conv": encoder["conv"]}
        n_models = len(splits.train)
        keys = jax.random.split(jax.random.key(b["seed"]), n_models + 1)
        heads0 = jax.vmap(lambda k: model.init_head(k, head, channels, tokens, classes,
                                                    b["filters"]))(keys[1:])
        if mode == "probe" and head != "pre_local":  # frozen features, computed once
            feats = _batched(lambda xb: model.head_tokens(head, used, xb, rate=0.0, **kw), x)
            logits_fn = lambda p, idx, key: model.filtered_logits(p, feats[idx])
            params0 = heads0
        elif mode == "probe":
            logits_fn = lambda p, idx, key: model.head_logits(head, used, p, x[idx], rate=0.0, **kw)
            params0 = heads0
        else:
            logits_fn = lambda p, idx, key: model.head_logits(
                head, p["encoder"], p["head"], x[idx], key=key, rate=b["dropout"], **kw)
            tiled = jax.tree.map(lambda a: jnp.broadcast_to(a, (n_models,) + a.shape), used)
            params0 = {"encoder": tiled, "head": heads0}
        if mode == "probe":
            logits = fit_probe(logits_fn, params0, y, splits, steps=b["probe_steps"],
                               weight_decay=b["probe_weight_decay"])
        else:
            logits = fit_predict(logits_fn, params0, y, splits, epochs=b["finetune_epochs"],
                                 lr=b["finetune_lr"], weight_decay=b["weight_decay"],
                                 batch_size=b["batch_size"], key=keys[0])
        return splits.score(np.asarray(logits), data["label"], metric)


# -- cross-validation --------------------------------------------------------------------------
class Splits:
    """Per (subject, fold) model: padded train / test indices with validity."""

    def __init__(self, train, test, subjects):
        self.subjects = np.asarray(subjects)
        self.train, self.train_valid = _pad(train)
        self.test, self.test_valid = _pad(test)

    def score(self, logits, labels, metric) -> float:
        """Mean over subjects of the mean over folds."""
        per_subject = {}
        for m, s in enumerate(self.subjects):
            idx = self.test[m][self.test_valid[m]]
            per_subject.setdefault(s, []).append(
                _metric(logits[m][self.test_valid[m]], labels[idx], metric))
        return float(np.mean([np.mean(v) for v in per_subject.values()]))


def folds(subjects, labels, n_folds, seed) -> Splits:
    from sklearn.model_selection import StratifiedKFold

    train, test, owners = [], [], []
    for s in np.unique(subjects):
        idx = np.flatnonzero(subjects == s)
        k = min(n_folds, np.bincount(labels[idx]).min())
        if k < 2:
            raise DataError(f"subject {s} has fewer than 2 epochs of some class: no "
                            "cross-validation possible")
        for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(idx, labels[idx]):
            train.append(idx[tr]), test.append(idx[te]), owners.append(s)
    return Splits(train, test, owners)


def _pad(index_lists):
    width = max(map(len, index_lists))
    idx = np.zeros((len(index_lists), width), np.int32)
    valid = np.zeros(idx.shape, bool)
    for i, ix in enumerate(index_lists):
        idx[i, :len(ix)], valid[i, :len(ix)] = ix, True
    return idx, valid


def _metric(logits, labels, metric) -> float:
    if metric == "accuracy":
        return float(np.mean(np.argmax(logits, -1) == labels))
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, logits[:, 1] - logits[:, 0]))


def fit_probe(logits_fn, params0, labels, splits: Splits, *, steps, weight_decay):
    """Fit one head per split (vmapped) to convergence: full-batch L-BFGS on its training
    indices' weighted cross-entropy + L2 on the kernels (the frozen-feature probe is a small
    deterministic problem: no minibatches, no learning rate); its logits on its test indices."""
    def one(params, train, train_valid, test):
        weights = train_valid.astype(jnp.float32)

        def objective(p):
            ce = optax.softmax_cross_entropy_with_integer_labels(logits_fn(p, train, None),
                                                                 labels[train])
            l2 = sum(jnp.sum(p[part]["kernel"] ** 2) for part in ("spatial", "linear"))
            return jnp.sum(ce * weights) / jnp.sum(weights) + 0.5 * weight_decay * l2

        return logits_fn(minimize_lbfgs(objective, params, steps), test, None)

    return jax.jit(jax.vmap(one))(params0, jnp.asarray(splits.train),
                                  jnp.asarray(splits.train_valid), jnp.asarray(splits.test))


def fit_predict(logits_fn, params0, labels, splits: Splits, *, epochs, lr, weight_decay,
                batch_size, key):
    """Fine-tune one model per split (vmapped) with AdamW on weighted cross-entropy over shuffled
    minibatches of its (padded) training indices; its logits on its test indices."""
    n_train = splits.train.shape[1]
    batch = min(batch_size, n_train)
    steps = math.ceil(n_train / batch)
    opt = optax.adamw(lr, weight_decay=weight_decay)

    def one(params, train, train_valid, test, key):
        def loss_fn(p, idx, w, k):
            ce = optax.softmax_cross_entropy_with_integer_labels(logits_fn(p, idx, k), labels[idx])
            return jnp.sum(ce * w) / jnp.maximum(jnp.sum(w), 1.0)

        def epoch(carry, k):
            params, state = carry
            order = jax.random.permutation(k, n_train)
            order = jnp.concatenate([order, order[:steps * batch - n_train]]).reshape(steps, batch)

            def step(carry, i):
                params, state = carry
                idx = order[i]
                grads = jax.grad(loss_fn)(params, train[idx], train_valid[idx].astype(jnp.float32),
                                          jax.random.fold_in(k, i))
                updates, state = opt.update(grads, state, params)
                return (optax.apply_updates(params, updates), state), None

            return jax.lax.scan(step, (params, state), jnp.arange(steps))[0], None

        (params, _), _ = jax.lax.scan(epoch, (params, opt.init(params)),
                                      jax.random.split(key, epochs))
        return logits_fn(params, test, None)

    keys = jax.random.split(key, len(splits.train))
    return jax.jit(jax.vmap(one))(params0, jnp.asarray(splits.train),
                                  jnp.asarray(splits.train_valid), jnp.asarray(splits.test), keys)


def _batched(fn, x, size=64):
    f = jax.jit(fn)
    return jnp.concatenate([f(x[i:i + size]) for i in range(0, len(x), size)])


def _now():
    import time

    return time.perf_counter()


# -- classical baselines -----------------------------------------------------------------------
def classical_score(kind, data, splits: Splits, metric) -> float:
    """CSP + LDA or xDAWN + shrinkage LDA, fitted per (subject, fold) like the heads."""
    x = np.asarray(data["eeg"], np.float64)
    y = np.asarray(data["label"])
    logits = np.zeros(splits.test.shape + (int(y.max()) + 1,))
    for m in range(len(splits.train)):
        tr = splits.train[m][splits.train_valid[m]]
        te = splits.test[m][splits.test_valid[m]]
        pipe = _classical_pipeline(kind)
        pipe.fit(x[tr], y[tr])
        logits[m, :len(te)] = pipe.decision_function(x[te])[:, None] * np.array([-0.5, 0.5]) \
            if len(pipe.classes_) == 2 else pipe.decision_function(x[te])
    return splits.score(logits, y, metric)


def _classical_pipeline(kind):
    import mne
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    mne.set_log_level("ERROR")
    if kind == "csp_lda":
        from mne.decoding import CSP

        return make_pipeline(CSP(n_components=6, log=True), LinearDiscriminantAnalysis())
    from mne.decoding import XdawnTransformer

    return make_pipeline(XdawnTransformer(n_components=2),
                         FunctionTransformer(lambda z: z.reshape(len(z), -1)),
                         LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"))
