"""Procedural, seeded integer arithmetic for the arithmetic length-generalization study (Jelassi,
d'Ascoli, Domingo-Enrich, Wu, Li, Charton, "Length Generalization in Arithmetic Transformers",
2023), laid out for an encoder-only transformer.

Tokens: the shared vocabulary of ``data_pipelines.sequence_tasks`` (digits, ``+``, ``×``, ``=``,
pad ``*``). Layout of ``a op b`` (our choice; the paper does not give all of it): every number is
written least-significant digit first and zero-padded to a fixed width, so digit i of each
operand and of the result sits at the same place in every example::

    a_0 .. a_{Wa-1}  op  b_0 .. b_{Wb-1}  =  r_0 .. r_{Wr-1}

with Wr = Wa + 1 (addition, Wa = Wb) or Wa + Wb (multiplication). The encoder reads the operands
and ``=`` followed by Wr answer slots (pad tokens, never attended to) and predicts result digit i
at slot i: one pass, no decoding; a result is right when all Wr digits are. A model trained on
short numbers has only ever seen zeros in the high digits: length generalization is carrying
the per-digit rule over to places it never saw non-zero.

Sampling (balanced over operand lengths, as the paper): the number of digits of each operand is
uniform over its range, then the number is uniform among numbers with that many digits (1 digit:
0-9). Evaluation example i has a of ``eval_lengths[i % n]`` digits (and b of its largest training
length for multiplication, of the same length for addition); ``length`` = digits of a.

Train-set priming: the training set is ``train_size`` examples of the base lengths plus
``prime_count`` examples whose a has ``prime_lengths`` digits (spread over those lengths), mixed
into one finite set that the loop shuffles each epoch (the paper's setting: a few long examples
among many short ones).
"""

from __future__ import annotations

import numpy as np

from data_pipelines.errors import DataError
from data_pipelines.sequence_tasks import PAD_ID, VOCAB, encode

OPERATIONS = {"add": "+", "mul": "×"}
SPLITS = {"train": 0, "test": 1, "in_distribution": 2, "prime": 3}


def number(rng: np.random.Generator, digits: int) -> int:
    """Uniform among numbers with exactly `digits` digits (0-9 for one digit)."""
    if digits == 1:
        return int(rng.integers(10))
    return int(rng.integers(10 ** (digits - 1), 10 ** digits))


def digits_lsb_first(value: int, width: int) -> str:
    text = str(value)[::-1]
    if len(text) > width:
        raise DataError(f"{value} has more than {width} digits; raise data.width")
    return text + "0" * (width - len(text))


def widths(data) -> tuple[int, int, int]:
    """(Wa, Wb, Wr) digit slots of a, b and the result."""
    wa, wb = data.width
    return wa, wb, wa + 1 if data.operation == "add" else wa + wb


def layout(a: int, b: int, data) -> dict[str, np.ndarray]:
    """Encoder arrays of `a op b`: inputs (operands, '=', pad slots), targets (result digits at
    the slots), loss_mask (the slots)."""
    wa, wb, wr = widths(data)
    result = a + b if data.operation == "add" else a * b
    prompt = (digits_lsb_first(a, wa) + OPERATIONS[data.operation] + digits_lsb_first(b, wb)
              + "=")
    inputs = np.concatenate([encode(prompt), np.full(wr, PAD_ID, np.int32)])
    targets = np.full(len(inputs), PAD_ID, np.int32)
    targets[len(prompt):] = encode(digits_lsb_first(result, wr))
    mask = np.zeros(len(inputs), bool)
    mask[len(prompt):] = True
    return {"inputs": inputs, "targets": targets, "loss_mask": mask}


def read_result(targets, loss_mask) -> int:
    """The integer written at the answer slots (least-significant digit first)."""
    from data_pipelines.sequence_tasks import decode

    return int(decode(np.asarray(targets)[np.asarray(loss_mask)])[::-1])


class Arithmetic:
    """Random-access source: example i of `split` -> {'inputs', 'targets', 'loss_mask' (T,),
    'length' (digits of a)}."""

    vocab, pad_id = VOCAB, PAD_ID

    def __init__(self, data, split: str):
        self.data, self.split = data, split
        wa, wb, wr = widths(data)
        self.length = wa + wb + 2 + wr
        if split == "train":
            self.size = data.train_size + data.prime_count
        elif split == "test":
            self.size = data.eval_examples * len(data.eval_lengths)
        elif split == "in_distribution":
            self.size = data.eval_examples
        else:
            raise DataError(f"arithmetic has splits train, test, in_distribution; got {split!r}")

    def __len__(self):
        return self.size

    @staticmethod
    def examples_per_row() -> float:
        return 1.0

    def operand_lengths(self, rng, i: int) -> tuple[int, int]:
        d = self.data
        (a_lo, a_hi), (b_lo, b_hi) = d.train_digits
        if self.split == "train" and i >= d.train_size:  # a primed example
            la = d.prime_lengths[(i - d.train_size) % len(d.prime_lengths)]
            return la, b_hi
        if self.split == "train":
            return int(rng.integers(a_lo, a_hi + 1)), int(rng.integers(b_lo, b_hi + 1))
        la = a_hi if self.split == "in_distribution" else d.eval_lengths[i % len(d.eval_lengths)]
        return la, (la if d.operation == "add" else b_hi)

    def __getitem__(self, i):
        i = int(i)
        split = "prime" if self.split == "train" and i >= self.data.train_size else self.split
        rng = np.random.default_rng((self.data.seed, SPLITS[split], i))
        la, lb = self.operand_lengths(rng, i)
        a, b = number(rng, la), number(rng, lb)
        return {**layout(a, b, self.data), "length": np.int32(la)}


def check(data) -> None:
    if data.operation not in OPERATIONS:
        raise DataError(f"data.operation={data.operation!r}: use one of {', '.join(OPERATIONS)}")
    wa, wb = data.width
    if data.operation == "add" and wa != wb:
        raise DataError(f"addition pads both operands alike: data.width={tuple(data.width)} "
                        "needs two equal widths")
    (a_lo, a_hi), (b_lo, b_hi) = data.train_digits
    longest_a = max(a_hi, *data.eval_lengths, *(data.prime_lengths or (0,)))
    if not (1 <= a_lo <= a_hi and 1 <= b_lo <= b_hi) or longest_a > wa or b_hi > wb:
        raise DataError(f"data.train_digits={tuple(map(tuple, data.train_digits))}, "
                        f"eval_lengths up to {max(data.eval_lengths)} and prime_lengths "
                        f"{tuple(data.prime_lengths)} must be >= 1 and fit data.width="
                        f"{tuple(data.width)}")
    if data.prime_count and not data.prime_lengths:
        raise DataError(f"data.prime_count={data.prime_count} needs data.prime_lengths")


def source(data, split: str) -> Arithmetic:
    """The sources-registry factory (``data.dataset = 'arithmetic'``)."""
    check(data)
    return Arithmetic(data, split)
