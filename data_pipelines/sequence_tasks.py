"""Procedural, seeded sequence tasks of the copying study (Jelassi et al., "Repeat After Me",
ICML 2024) with the official token layout.

Vocabulary (one for every sequence task; ``TOKENS[i]`` is token i): the 26 letters, the start
``$``, separator ``|``, end ``.`` and pad ``*`` of the official code, then the digits (phone-book
numbers, arithmetic) and ``+ × =`` (arithmetic). Each example is a prompt and an answer that
ends with ``.``; the loss and the exact match cover the answer (end token included):

* ``copy``          ``$s|`` -> ``s.``
* ``prefix_ngram``  ``$g|s|`` -> ``t.``: g is an n-gram that occurs once in s, t what follows
  it in s (all of it, or its first ``answer_length`` letters)
* ``suffix_ngram``  ``$s|g`` -> ``t.``: the same lookup with the key after the string
* ``phonebook``     ``$k1v1|k2v2|...|kPvP|kq`` -> ``vq.``: P distinct letter names with digit
  numbers, then one of the names; the "length" of a phone book is its number of entries P

Example i of a split is drawn from ``numpy.random.default_rng((seed, split, i))``: the same
index always gives the same example. Training lengths are uniform over ``data.train_lengths``
(inclusive); evaluation splits cycle through their lengths so every length gets as many examples.
Decoder layout: ``inputs`` = text[:-1], ``targets`` = text[1:] (next token), ``loss_mask`` on
the answer's targets; padded with ``*`` to the split's fixed length.
"""

from __future__ import annotations

import collections

import numpy as np

from data_pipelines.errors import DataError

LETTERS = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
START, SEP, END, PAD = "$", "|", ".", "*"
TOKENS = LETTERS + START + SEP + END + PAD + DIGITS + "+×="
VOCAB = len(TOKENS)
PAD_ID = TOKENS.index(PAD)
_IDS = {ch: i for i, ch in enumerate(TOKENS)}

TASKS = ("copy", "prefix_ngram", "suffix_ngram", "phonebook")
SPLITS = {"train": 0, "test": 1, "in_distribution": 2}


def encode(text: str) -> np.ndarray:
    try:
        return np.array([_IDS[ch] for ch in text], np.int32)
    except KeyError as e:
        raise ValueError(f"{e.args[0]!r} is not a token; the vocabulary is {TOKENS!r}") from None


def decode(ids) -> str:
    return "".join(TOKENS[int(i)] for i in ids)


def letters(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list(LETTERS), size=n))


# -- the tasks: (rng, length, settings) -> (prompt, answer) ---------------------------------------

def copy(rng, length, data):
    s = letters(rng, length)
    return f"{START}{s}{SEP}", f"{s}{END}"


def _lookup(rng, length, data):
    """(string, key n-gram, answer) for the n-gram lookups."""
    n, answer_length = data.n_gram, data.answer_length
    for _ in range(100):
        s = letters(rng, length)
        # keys with at least one letter after them (answer_length of them, if it is set)
        starts = range(length - n - max(answer_length, 1) + 1)
        grams = [s[i:i + n] for i in starts]
        if data.get("official", False):
            # the official code's choice: any n-gram, looked up at its first occurrence
            key = grams[rng.integers(len(grams))]
        else:
            counts = collections.Counter(s[i:i + n] for i in range(length - n + 1))
            unique = [g for g in grams if counts[g] == 1]
            if not unique:
                continue
            key = unique[rng.integers(len(unique))]
        rest = s[s.index(key) + n:]
        return s, key, (rest[:answer_length] if answer_length else rest)
    raise DataError(f"no {n}-gram occurs once in 100 random strings of length {length}; use "
                    "longer strings or a larger data.n_gram")


def prefix_ngram(rng, length, data):
    s, key, answer = _lookup(rng, length, data)
    return f"{START}{key}{SEP}{s}{SEP}", f"{answer}{END}"


def suffix_ngram(rng, length, data):
    s, key, answer = _lookup(rng, length, data)
    return f"{START}{s}{SEP}{key}", f"{answer}{END}"


def phonebook(rng, entries, data):
    names: list[str] = []
    while len(names) < entries:
        name = letters(rng, data.name_length)
        if name not in names:
            names.append(name)
    numbers = ["".join(rng.choice(list(DIGITS), size=data.number_length)) for _ in names]
    q = int(rng.integers(entries))
    book = SEP.join(k + v for k, v in zip(names, numbers))
    return f"{START}{book}{SEP}{names[q]}", f"{numbers[q]}{END}"


GENERATORS = {"copy": copy, "prefix_ngram": prefix_ngram, "suffix_ngram": suffix_ngram,
              "phonebook": phonebook}


def text_length(task: str, length: int, data) -> int:
    """The longest prompt + answer the task makes at `length`, in tokens."""
    if task == "copy":
        return 2 * length + 3
    if task == "phonebook":
        entry = data.name_length + data.number_length
        return 1 + length * (entry + 1) + entry + 1
    answer = data.answer_length or length - data.n_gram
    return 1 + data.n_gram + 1 + length + 1 + answer + 1  # prefix (suffix is one shorter)


def min_length(task: str, data) -> int:
    if task == "copy":
        return 1
    if task == "phonebook":
        return 1
    return data.n_gram + max(data.answer_length, 1)


class SequenceTask:
    """Random-access source: example i of `split` -> {'inputs', 'targets', 'loss_mask' (T,),
    'length' ()}, all `self.length` tokens long.

    With ``data.context > 0`` each training row packs examples back to back into `context`
    tokens, as the official training data: the example that does not fit is cut and gets no
    loss, and `length` is the first example's. Packed rows start examples at every offset, so
    the position from the start of the row says little about the position in an example.
    Evaluation examples are never packed (one per row, padded)."""

    vocab, pad_id = VOCAB, PAD_ID

    def __init__(self, data, split: str, lengths: tuple[int, ...], size: int, uniform: bool):
        self.data, self.split, self.size = data, split, int(size)
        self.lengths = tuple(int(n) for n in lengths)
        self.uniform = uniform  # train: uniform over the range; eval: cycle through lengths
        self.generate = GENERATORS[data.task]
        self.packed = split == "train" and data.context > 0
        longest = max(text_length(data.task, n, data) for n in self.lengths)
        self.length = (data.context if self.packed else longest) - 1

    def __len__(self):
        return self.size

    def examples_per_row(self, rows: int = 256) -> float:
        """Mean number of scored (whole) examples per row: 1 unless packed."""
        if not self.packed:
            return 1.0
        ends = [np.sum(e["loss_mask"] & (e["targets"] == _IDS[END])) for e in map(
            self.__getitem__, range(rows))]
        return float(np.mean(ends))

    def length_of(self, rng, i: int) -> int:
        if self.uniform:
            return int(rng.integers(self.lengths[0], self.lengths[-1] + 1))
        return self.lengths[i % len(self.lengths)]

    def __getitem__(self, i):
        i = int(i)
        rng = np.random.default_rng((self.data.seed, SPLITS[self.split], i))
        examples, sizes = [], []
        while True:
            sizes.append(self.length_of(rng, i))
            examples.append(self.generate(rng, sizes[-1], self.data))
            if not self.packed or sum(len(p + a) for p, a in examples) >= self.length + 1:
                break
        return {**decoder_layout(examples, self.length), "length": np.int32(sizes[0])}


def decoder_layout(examples: list[tuple[str, str]], length: int) -> dict[str, np.ndarray]:
    """Next-token arrays of the (prompt, answer) examples back to back, cut or padded to
    `length` + 1 tokens: inputs = text[:-1], targets = text[1:], and the loss covers targets
    that are answer tokens of examples that fit whole."""
    tokens, answer = [], []
    for prompt, ans in examples:
        whole = len(tokens) + len(prompt) + len(ans) <= length + 1
        tokens += list(encode(prompt + ans))
        answer += [False] * len(prompt) + [whole] * len(ans)
    tokens = np.array(tokens[:length + 1], np.int32)
    answer = np.array(answer[:length + 1], bool)
    inputs = np.full(length, PAD_ID, np.int32)
    targets = np.full(length, PAD_ID, np.int32)
    mask = np.zeros(length, bool)
    n = len(tokens) - 1
    inputs[:n], targets[:n], mask[:n] = tokens[:-1], tokens[1:], answer[1:]
    return {"inputs": inputs, "targets": targets, "loss_mask": mask}


def check(data) -> None:
    """DataError naming the setting, before any training."""
    if data.task not in TASKS:
        raise DataError(f"data.task={data.task!r}: use one of {', '.join(TASKS)}")
    lo, hi = data.train_lengths
    low = min_length(data.task, data)
    if not low <= lo <= hi:
        raise DataError(f"data.train_lengths={tuple(data.train_lengths)} must satisfy {low} <= "
                        f"min <= max for {data.task} (n_gram={data.n_gram}, "
                        f"answer_length={data.answer_length})")
    if data.context and data.context < text_length(data.task, hi, data):
        raise DataError(f"data.context={data.context} tokens cannot hold a {data.task} example "
                        f"of length {hi} ({text_length(data.task, hi, data)} tokens); raise it "
                        "or set it to 0 (one example per row)")
    if not data.eval_lengths or min(data.eval_lengths) < low:
        raise DataError(f"data.eval_lengths={tuple(data.eval_lengths)} must be non-empty and "
                        f">= {low} for {data.task}")
    if data.task == "phonebook" and len(LETTERS) ** data.name_length < max(hi, *data.eval_lengths):
        raise DataError(f"data.name_length={data.name_length} gives too few distinct names for "
                        f"{max(hi, *data.eval_lengths)} entries; raise it")


def source(data, split: str) -> SequenceTask:
    """The sources-registry factory (``data.dataset = 'sequence_tasks'``)."""
    check(data)
    if split == "train":
        return SequenceTask(data, split, tuple(data.train_lengths), data.train_size, uniform=True)
    if split == "test":
        lengths = tuple(data.eval_lengths)
    elif split == "in_distribution":  # the longest training length (sample efficiency)
        lengths = (data.train_lengths[1],)
    else:
        raise DataError(f"sequence tasks have splits {', '.join(SPLITS)}; got {split!r}")
    return SequenceTask(data, split, lengths, data.eval_examples * len(lengths), uniform=False)
