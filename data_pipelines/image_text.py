"""Captioned images with sentiment: {'image': uint8 (S, S, 3), 'tokens': int32 (L,), 'label'}.

Two on-disk layouts are read:

* **captioned image folder** (``data.dataset='image_text'``, your own data): ``<path>/<split>.csv``
  or ``<path>/<split>.jsonl`` with the fields ``image`` (a path relative to ``<path>``),
  ``caption`` and optionally ``label`` (positive / neutral / negative; empty for unlabelled
  pretraining pairs), plus ``<path>/vocab.txt`` (one word per line; build it with
  ``python -m data_pipelines.image_text vocab <path>``);
* **MVSA** (``data.dataset='mvsa'``; Niu et al., MMM 2016), as distributed: ``<path>/data/<id>.jpg``
  and ``<id>.txt`` (the tweet), and ``<path>/labelResultAll.txt`` (tab-separated, header
  ``ID\\ttext,image``). MVSA-Single has one ``text,image`` annotation per post; MVSA-Multiple has
  three (``ID\\ttext,image\\ttext,image\\ttext,image``), reduced per modality by majority (a label
  needs 2 of 3 votes, else the post is dropped). Text and image labels then merge by the MVSA
  rule (:func:`mvsa_label`). MVSA has no official split: posts are split 8:1:1 into train / val /
  test by a seeded permutation, as MultiSentiNet and TI-JEPA do.

Captions become word ids: lower-cased words (``[a-z0-9']+``) looked up in the vocabulary (ids 0,
1, 2 are ``[PAD]``, ``[MASK]``, ``[UNK]``), truncated or padded to ``data.max_tokens``.

Corrupted evaluation splits (the fusion check): ``<split>/shuffled_captions`` pairs every image
with another example's caption (a fixed derangement), ``<split>/noise_images`` replaces every
image with uniform noise; labels stay those of the clean example.
"""

from __future__ import annotations

import collections
import csv
import json
import re
import sys
from pathlib import Path

import numpy as np

from data_pipelines.errors import DataError

LABELS = ("negative", "neutral", "positive")
PAD, MASK, UNK = 0, 1, 2
SPECIAL = ("[PAD]", "[MASK]", "[UNK]")
CORRUPTIONS = ("shuffled_captions", "noise_images")
_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


# -- the MVSA label rules ----------------------------------------------------------------------
def mvsa_label(text_label: str, image_label: str) -> str | None:
    """MultiSentiNet's rule for one post: equal labels stand; neutral + polar gives the polar
    label; positive + negative is inconsistent (None: the post is removed)."""
    if text_label == image_label:
        return text_label
    if text_label == "neutral":
        return image_label
    if image_label == "neutral":
        return text_label
    return None


def majority(votes: list[str]) -> str | None:
    """MVSA-Multiple's per-modality label: the label at least 2 of the 3 annotators gave."""
    label, count = collections.Counter(votes).most_common(1)[0]
    return label if count >= 2 else None


# -- vocabulary --------------------------------------------------------------------------------
class Vocabulary:
    def __init__(self, tokens: list[str]):
        if tuple(tokens[:3]) != SPECIAL:
            raise DataError(f"a vocabulary starts with {SPECIAL}, got {tokens[:3]}")
        self.tokens = tokens
        self.ids = {t: i for i, t in enumerate(tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def read(cls, path: Path) -> "Vocabulary":
        if not path.is_file():
            raise DataError(f"vocabulary {path} does not exist; build it from your captions with "
                            f"`python -m data_pipelines.image_text vocab {path.parent}`")
        return cls(path.read_text(encoding="utf-8").splitlines())

    @classmethod
    def build(cls, captions, size: int | None = None) -> "Vocabulary":
        """Words by frequency (ties alphabetically), the special tokens first."""
        counts = collections.Counter(w for c in captions for w in words(c))
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        return cls(list(SPECIAL) + ranked[:None if size is None else size - len(SPECIAL)])

    def write(self, path: Path) -> None:
        path.write_text("\n".join(self.tokens) + "\n", encoding="utf-8")

    def encode(self, text: str, length: int) -> np.ndarray:
        ids = [self.ids.get(w, UNK) for w in words(text)][:length]
        return np.asarray(ids + [PAD] * (length - len(ids)), np.int32)

    def decode(self, ids) -> str:
        return " ".join(self.tokens[i] for i in ids if i != PAD)


# -- sources -----------------------------------------------------------------------------------
def load_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            return np.asarray(img, np.uint8)
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist (named by the captions file)") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"image {path} is corrupt or unreadable ({e}); remove or replace it") from e


class CaptionedImages:
    """Random access to (image file, caption, label) records; images decoded on access."""

    def __init__(self, records: list[tuple[Path, str, int]], vocab: Vocabulary, *,
                 image_size: int, max_tokens: int, name: str, read_images: bool = True):
        if not records:
            raise DataError(f"{name} holds no examples")
        self.records, self.vocab, self.name = records, vocab, name
        self.image_size, self.max_tokens = image_size, max_tokens
        self.read_images = read_images  # False: captions only (text pretraining)

    def __len__(self) -> int:
        return len(self.records)

    def labels(self) -> np.ndarray:
        return np.asarray([r[2] for r in self.records], np.int32)

    def caption(self, i: int) -> str:
        return self.records[i][1]

    def __getitem__(self, i: int) -> dict:
        path, caption, label = self.records[i]
        example = {"tokens": self.vocab.encode(caption, self.max_tokens), "label": np.int32(label)}
        if self.read_images:
            example["image"] = load_image(path, self.image_size)
        return example


class Concatenated:
    """Several sources read as one (e.g. the emoji names and the scenes for pretraining)."""

    def __init__(self, parts: list):
        self.parts, self.vocab = parts, parts[0].vocab
        self.starts = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, i: int) -> dict:
        part = int(np.searchsorted(self.starts, i, side="right")) - 1
        return self.parts[part][i - int(self.starts[part])]


class Corrupted:
    """A split with its captions shuffled among examples or its images replaced by noise."""

    def __init__(self, source, corruption: str, seed: int = 0):
        if corruption not in CORRUPTIONS:
            raise DataError(f"unknown corruption {corruption!r}; use one of {CORRUPTIONS}")
        self.source, self.corruption, self.seed = source, corruption, seed
        self.vocab = source.vocab
        n = len(source)
        # A derangement: a random cyclic shift of a random order moves every caption.
        order = np.random.default_rng(seed).permutation(n)
        self.partner = np.empty(n, np.int64)
        self.partner[order] = np.roll(order, 1)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> dict:
        example = dict(self.source[i])
        if self.corruption == "shuffled_captions":
            example["tokens"] = self.source[int(self.partner[i])]["tokens"]
        elif "image" in example:
            rng = np.random.default_rng((self.seed, i))
            example["image"] = rng.integers(0, 256, example["image"].shape, dtype=np.uint8)
        return example


def _label_id(value, where: str) -> int:
    value = (value or "").strip().lower()
    if value == "":
        return -1
    if value not in LABELS:
        raise DataError(f"{where}: label {value!r} is not one of {LABELS} (or empty)")
    return LABELS.index(value)


def read_captions(root: Path, split: str) -> list[tuple[Path, str, int]]:
    """The records of `<root>/<split>.csv` or `.jsonl`."""
    csv_path, jsonl_path = root / f"{split}.csv", root / f"{split}.jsonl"
    if csv_path.is_file():
        with csv_path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        where = str(csv_path)
    elif jsonl_path.is_file():
        where = str(jsonl_path)
        try:
            rows = [json.loads(line) for line in jsonl_path.read_text(encoding="utf-8").splitlines()
                    if line.strip()]
        except json.JSONDecodeError as e:
            raise DataError(f"{jsonl_path} is not JSON lines ({e})") from e
    else:
        available = sorted(p.stem for p in root.glob("*.csv")) + sorted(
            p.stem for p in root.glob("*.jsonl"))
        raise DataError(f"no captions for split {split!r}: neither {csv_path} nor {jsonl_path} "
                        f"exists (splits there: {available or 'none'})")
    missing = {"image", "caption"} - set(rows[0] if rows else ())
    if missing:
        raise DataError(f"{where} lacks the field(s) {sorted(missing)}; each record needs "
                        "image (a path relative to the folder), caption and optionally label")
    return [(root / r["image"], str(r["caption"]), _label_id(r.get("label"), where))
            for r in rows]


def read_mvsa(root: Path) -> list[tuple[Path, str, int]]:
    """MVSA-Single or -Multiple posts with their merged labels (inconsistent posts dropped)."""
    labels_path = root / "labelResultAll.txt"
    if not labels_path.is_file():
        raise DataError(f"{labels_path} does not exist: point --config.data.path at the MVSA "
                        "folder that holds labelResultAll.txt and data/")
    lines = labels_path.read_text(encoding="utf-8", errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        post, *annotations = line.strip().split("\t")
        try:
            pairs = [a.split(",") for a in annotations]
            texts, images = zip(*[(t.strip(), i.strip()) for t, i in pairs])
        except ValueError:
            raise DataError(f"{labels_path}:{number}: expected 'ID<TAB>text,image' (one pair per "
                            f"annotator), got {line!r}") from None
        text_label, image_label = (texts[0], images[0]) if len(pairs) == 1 else (
            majority(list(texts)), majority(list(images)))
        if text_label is None or image_label is None:
            continue  # MVSA-Multiple: no 2-of-3 agreement on one modality
        label = mvsa_label(text_label, image_label)
        if label is None:
            continue
        text_path = root / "data" / f"{post}.txt"
        try:  # the tweets come in mixed encodings
            caption = text_path.read_bytes().decode("utf-8", errors="replace").strip()
        except FileNotFoundError:
            raise DataError(f"{text_path} does not exist (post {post} of {labels_path})") from None
        records.append((root / "data" / f"{post}.jpg", caption, _label_id(label, str(labels_path))))
    return records


MVSA_SPLITS = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}


def mvsa_split(records: list, split: str, seed: int = 0) -> list:
    if split not in MVSA_SPLITS:
        raise DataError(f"MVSA split {split!r} does not exist; use one of {list(MVSA_SPLITS)}")
    order = np.random.default_rng(seed).permutation(len(records))
    lo, hi = (int(round(f * len(records))) for f in MVSA_SPLITS[split])
    return [records[i] for i in sorted(order[lo:hi])]


def _vocab(data_config, root: Path) -> Vocabulary:
    return Vocabulary.read(Path(data_config.get("vocab") or root / "vocab.txt"))


def _with_corruption(read_split, split: str):
    base, _, corruption = split.partition("/")
    source = read_split(base)
    return Corrupted(source, corruption) if corruption else source


def captioned_source(data_config, split: str, root: Path | None = None):
    """Factory for a captioned image folder; `split` may join several with '+'."""
    root = Path(root or data_config.path)
    if not root.is_dir():
        raise DataError(f"captioned image folder {root} does not exist; set --config.data.path "
                        "to a folder with <split>.csv or <split>.jsonl and vocab.txt")
    vocab = _vocab(data_config, root)

    def read(name):
        parts = [CaptionedImages(read_captions(root, s), vocab, image_size=data_config.image_size,
                                 max_tokens=data_config.max_tokens, name=f"{root}/{s}",
                                 read_images=data_config.get("read_images", True))
                 for s in name.split("+")]
        return parts[0] if len(parts) == 1 else Concatenated(parts)

    return _with_corruption(read, split)


def mvsa_source(data_config, split: str):
    root = Path(data_config.path)
    records = read_mvsa(root)
    vocab = _vocab(data_config, root)
    return _with_corruption(lambda s: CaptionedImages(
        mvsa_split(records, s), vocab, image_size=data_config.image_size,
        max_tokens=data_config.max_tokens, name=f"MVSA {root} ({s})",
        read_images=data_config.get("read_images", True)), split)


def main(argv: list[str]) -> None:
    """`python -m data_pipelines.image_text vocab FOLDER [SIZE]`: write FOLDER/vocab.txt from
    its train captions (MVSA: the train split's tweets)."""
    if len(argv) < 2 or argv[0] != "vocab":
        raise SystemExit(main.__doc__)
    root = Path(argv[1])
    size = int(argv[2]) if len(argv) > 2 else None
    records = (mvsa_split(read_mvsa(root), "train") if (root / "labelResultAll.txt").is_file()
               else read_captions(root, "train"))
    vocab = Vocabulary.build([r[1] for r in records], size)
    vocab.write(root / "vocab.txt")
    print(f"wrote {root / 'vocab.txt'}: {len(vocab)} tokens")


if __name__ == "__main__":
    main(sys.argv[1:])
