"""The copying study's procedural tasks (token layouts, determinism, packing, lengths) and the
exact-match metric on hand-built cases."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest

from data_pipelines import sequence_tasks as st
from data_pipelines.errors import DataError
from jepax.evaluators.base import Row
from jepax.evaluators.exact_match import ExactMatch, reach
from jepax.variants.sequence_lm import _all_right


def data(**overrides):
    d = dict(dataset="sequence_tasks", task="copy", train_lengths=(1, 10), eval_lengths=(5, 12),
             eval_examples=4, train_size=1000, n_gram=3, answer_length=0, name_length=3,
             number_length=4, official=False, seed=0, context=0)
    d.update(overrides)
    return ml_collections.ConfigDict(d)


def text(example, key="inputs"):
    """Prompt + answer of an unpacked example (inputs plus the last target)."""
    n = int(np.sum(example["inputs"] != st.PAD_ID))
    return st.decode(example["inputs"][:n]) + st.decode(example["targets"][n - 1:n])


def answer(example):
    return st.decode(example["targets"][example["loss_mask"]])


def test_vocabulary_keeps_the_official_ids_and_round_trips():
    assert st.TOKENS[:30] == "abcdefghijklmnopqrstuvwxyz$|.*"  # 26 letters, $ | . *
    assert st.PAD_ID == 29
    s = "$abc|abc.0123+×="
    assert st.decode(st.encode(s)) == s
    with pytest.raises(ValueError, match="not a token"):
        st.encode("A")


def test_copy_layout_is_start_string_separator_string_end():
    src = st.source(data(), "test")
    for i in range(6):
        e = src[i]
        s = text(e)
        n = int(e["length"])
        assert len(s) == 2 * n + 3 and s[0] == "$" and s[n + 1] == "|" and s[-1] == "."
        assert s[1:n + 1] == s[n + 2:-1]                    # the answer is the string
        assert answer(e) == s[n + 2:]                        # loss on the answer and the end
        np.testing.assert_array_equal(e["targets"][:len(s) - 2], e["inputs"][1:len(s) - 1])


@pytest.mark.parametrize("task", ["prefix_ngram", "suffix_ngram"])
def test_lookup_keys_occur_once_and_answers_follow_them(task):
    src = st.source(data(task=task, train_lengths=(8, 20), eval_lengths=(8, 20)), "test")
    for i in range(20):
        e = src[i]
        s, n = text(e), int(e["length"])
        if task == "prefix_ngram":  # $key|string|answer.
            key, string, rest = s[1:4], s[5:5 + n], s[6 + n:]
            assert s[4] == "|" and s[5 + n] == "|"
        else:                       # $string|key answer.
            string, key, rest = s[1:1 + n], s[2 + n:5 + n], s[5 + n:]
            assert s[1 + n] == "|"
        occurrences = [j for j in range(n - 2) if string[j:j + 3] == key]
        assert len(occurrences) == 1
        follows = string[occurrences[0] + 3:]
        assert rest == follows + "." and answer(e) == rest and follows


def test_phonebook_answer_is_the_queried_number():
    src = st.source(data(task="phonebook", train_lengths=(1, 6), eval_lengths=(3, 6)), "test")
    for i in range(10):
        e = src[i]
        s = text(e)
        *entries, query = s[1:s.rindex("|") + 1 + 3].split("|")
        book = {entry[:3]: entry[3:] for entry in entries}
        assert len(book) == len(entries) == int(e["length"])
        assert all(len(v) == 4 and v.isdigit() for v in book.values())
        assert answer(e) == book[query] + "."


def test_examples_are_deterministic_per_index_and_seed():
    a, b = st.source(data(), "train"), st.source(data(), "train")
    for i in (0, 7, 999):
        for key in a[i]:
            np.testing.assert_array_equal(a[i][key], b[i][key])
    other = st.source(data(seed=1), "train")
    assert not all(np.array_equal(a[i]["inputs"], other[i]["inputs"]) for i in range(5))
    test = st.source(data(), "test")
    assert not all(np.array_equal(a[i]["inputs"], test[i]["inputs"]) for i in range(5))


def test_splits_cover_their_lengths():
    d = data(train_lengths=(3, 7), eval_lengths=(5, 9, 12), eval_examples=4)
    train = st.source(d, "train")
    assert {int(train[i]["length"]) for i in range(300)} == set(range(3, 8))
    test = st.source(d, "test")
    assert len(test) == 12
    assert sorted(int(test[i]["length"]) for i in range(12)) == [5] * 4 + [9] * 4 + [12] * 4
    assert test.length == 2 * 12 + 2                  # every example fits, padded alike
    assert {int(e["length"]) for e in (st.source(d, "in_distribution")[i] for i in range(4))} == {7}


def test_packed_rows_fill_the_context_and_score_only_whole_answers():
    src = st.source(data(context=40), "train")
    assert src.length == 39
    for i in range(10):
        e = src[i]
        row = st.decode(e["inputs"]) + st.decode(e["targets"][-1:])
        assert "*" not in row and row[0] == "$"         # full, no padding
        whole = [p for p in row.split("$")[1:] if p.endswith(".")]
        scored = st.decode(e["targets"][e["loss_mask"]])
        assert scored == "".join(p[p.index("|") + 1:] for p in whole)  # cut example: no loss


def test_bad_settings_raise_clear_errors():
    with pytest.raises(DataError, match="data.task"):
        st.source(data(task="reverse"), "train")
    with pytest.raises(DataError, match="train_lengths"):
        st.source(data(task="suffix_ngram", train_lengths=(2, 10)), "train")
    with pytest.raises(DataError, match="data.context=10"):
        st.source(data(context=10), "train")
    with pytest.raises(DataError, match="splits"):
        st.source(data(), "validation")


# -- exact match -----------------------------------------------------------------------------------

def test_all_right_needs_every_masked_token():
    right = np.array([[1, 1, 0, 1], [1, 0, 1, 1], [0, 0, 0, 0]], np.float32)
    mask = np.array([[1, 1, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0]], np.float32)
    # wrong only where unscored -> right; one scored miss -> wrong; nothing scored -> right
    np.testing.assert_array_equal(_all_right(right, mask), [1.0, 0.0, 1.0])


def test_exact_match_by_length_and_reach_on_hand_built_cases():
    block = {"type": "exact_match", "every": 0, **ExactMatch.DEFAULTS, "threshold": 0.75}
    ev = ExactMatch("copy", block)
    arrays = {"correct": np.array([1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 1, 1], np.float32),
              "length": np.array([5, 5, 5, 5, 10, 10, 10, 10, 20, 20, 30, 30])}
    out = ev.evaluate(Row("pretrained", lambda split, examples: arrays))
    assert out["copy_by_length"] == {5: 1.0, 10: 0.75, 20: 0.0, 30: 1.0}
    assert out["copy_exact_match"] == pytest.approx(9 / 12)
    assert out["copy_reach"] == 10   # 30 is right again, but 20 is not: reach stops at 10
    assert ev.evaluate(Row("raw", lambda split, examples: {"length": arrays["length"]})) == {}
    assert reach({5: 0.5, 10: 1.0}, 0.9) == 0
