"""Captioned images that ship offline, written to disk and read back by data_pipelines.image_text.

* **emoji**: every single-glyph emoji of the Noto Color Emoji font (Debian
  ``fonts-noto-color-emoji``; scripts/setup.sh installs it) on a random pastel background,
  captioned with its CLDR short name from the ``emoji`` package ("grinning face", "cloud with
  rain"); unlabelled, for pretraining.
* **scenes** (splits ``train`` and ``test``): a face emoji and a weather emoji on a background,
  captioned by a template that may name them and states a mood, possibly negated ("grinning face
  and cloud with rain. i am not happy today"). Labels, one rule each:

  - image label: the sign of s(face) + s(weather), s = +1 / 0 / -1 for the emoji's polarity
    (the FACES and WEATHER tables);
  - text label: the polarity of the caption's mood word, flipped (positive <-> negative) when
    it is negated; a negated neutral word stays neutral;
  - label: the MVSA rule (``image_text.mvsa_label``) on (text, image); positive + negative
    posts are not written, as MVSA's are removed.

Written as ``images/*.png`` + ``emoji.csv`` / ``train.csv`` / ``test.csv`` (image, caption,
text_label, image_label, label) + ``vocab.txt``: the captioned-image-folder layout, so the same
loader reads them and a user's own data. :func:`write_mvsa` writes scenes in MVSA's own layout
(one or three annotators) to test the MVSA loader on real files.

``python -m data_pipelines.emoji_scenes OUT [--train N] [--test N] [--emoji N]`` writes a copy.
"""

from __future__ import annotations

import argparse
import csv
import functools
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from data_pipelines.errors import DataError
from data_pipelines.image_text import LABELS, Vocabulary, captioned_source, mvsa_label

log = logging.getLogger(__name__)

FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
FONT_HELP = ("install the Debian package fonts-noto-color-emoji (scripts/setup.sh does: "
             "`sudo apt-get install fonts-noto-color-emoji`)")
STRIKE = 109  # the font's only bitmap size
VERSION = 1   # bump when the generator's output changes: cached copies are regenerated

POLARITY = {"positive": 1, "neutral": 0, "negative": -1}
FACES = {
    "positive": ("grinning face", "beaming face with smiling eyes", "smiling face with heart-eyes",
                 "grinning squinting face", "star-struck", "smiling face with smiling eyes"),
    "neutral": ("neutral face", "expressionless face", "face without mouth", "thinking face",
                "zipper-mouth face"),
    "negative": ("crying face", "loudly crying face", "angry face", "enraged face",
                 "disappointed face", "fearful face"),
}
WEATHER = {
    "positive": ("sun", "sun with face", "rainbow", "sun behind small cloud"),
    "neutral": ("cloud", "fog", "sun behind large cloud", "wind face"),
    "negative": ("cloud with rain", "cloud with lightning and rain", "tornado",
                 "umbrella with rain drops"),
}
MOODS = {
    "positive": ("happy", "glad", "cheerful", "delighted", "wonderful", "lovely", "great"),
    "neutral": ("okay", "calm", "ordinary", "quiet", "plain"),
    "negative": ("sad", "gloomy", "upset", "miserable", "awful", "terrible", "angry"),
}
NEGATIONS = ("not", "never")
TEMPLATES = ("i am {neg}{mood} today", "this day is {neg}{mood}", "feeling {neg}{mood} right now",
             "the mood here is {neg}{mood}", "honestly it was {neg}{mood}")
FLIP = {"positive": "negative", "neutral": "neutral", "negative": "positive"}


# -- the labelling rules -----------------------------------------------------------------------
def image_label(face_polarity: str, weather_polarity: str) -> str:
    total = POLARITY[face_polarity] + POLARITY[weather_polarity]
    return "positive" if total > 0 else "negative" if total < 0 else "neutral"


def text_label(mood_polarity: str, negated: bool) -> str:
    return FLIP[mood_polarity] if negated else mood_polarity


# -- rendering ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _font():
    from PIL import ImageFont

    if not os.path.isfile(FONT):
        raise DataError(f"the emoji font {FONT} is missing: {FONT_HELP}")
    return ImageFont.truetype(FONT, STRIKE)


@functools.lru_cache(maxsize=4096)
def glyph(char: str):
    """The emoji as a tight RGBA Pillow image (None when the font has no single glyph for it)."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGBA", (STRIKE * 3, STRIKE * 2), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((4, 4), char, font=_font(), embedded_color=True)
    box = canvas.getbbox()
    if box is None or box[2] - box[0] > STRIKE * 1.4:  # nothing drawn, or several glyphs
        return None
    return canvas.crop(box)


@functools.lru_cache(maxsize=1)
def catalog() -> dict[str, str]:
    """CLDR short name -> emoji, for the fully-qualified emoji without skin tones, joiners or
    flags (those the font draws as several glyphs in Pillow's basic layout)."""
    try:
        import emoji
    except ImportError as e:
        raise DataError("the emoji names come from the `emoji` package: pip install emoji") from e
    names = {}
    for char, info in emoji.EMOJI_DATA.items():
        if info.get("status") != emoji.STATUS["fully_qualified"] or "\u200d" in char:
            continue
        if any(0x1F3FB <= ord(c) <= 0x1F3FF or 0x1F1E6 <= ord(c) <= 0x1F1FF for c in char):
            continue
        names[info["en"].strip(":").replace("_", " ").lower()] = char
    return names


def _by_name(name: str) -> str:
    char = catalog().get(name)
    if char is None or glyph(char) is None:
        raise DataError(f"emoji {name!r} is not in the emoji package's names or the font")
    return char


def _background(rng, size: int):
    from PIL import Image

    color = tuple(int(c) for c in rng.integers(150, 256, 3))
    return Image.new("RGB", (size, size), color)


def _paste(canvas, char: str, side: int, x: int, y: int) -> None:
    from PIL import Image

    g = glyph(char)
    scale = side / max(g.size)
    g = g.resize((max(1, round(g.size[0] * scale)), max(1, round(g.size[1] * scale))),
                 Image.LANCZOS)
    canvas.paste(g, (x, y), g)


def render_emoji(char: str, rng, size: int):
    canvas = _background(rng, size)
    side = int(rng.integers(int(size * 0.7), int(size * 0.9) + 1))
    x, y = (int(v) for v in rng.integers(0, size - side + 1, 2))
    _paste(canvas, char, side, x, y)
    return canvas


def render_scene(face: str, weather: str, rng, size: int):
    """The face and the weather icon side by side (which side is random), jittered."""
    canvas = _background(rng, size)
    face_side = int(rng.integers(int(size * 0.42), int(size * 0.52) + 1))
    weather_side = int(rng.integers(int(size * 0.32), int(size * 0.42) + 1))
    face_left = rng.uniform() < 0.5
    for char, side, left in ((face, face_side, face_left), (weather, weather_side, not face_left)):
        half = size // 2
        x0 = 0 if left else half
        x = x0 + int(rng.integers(0, max(1, half - side + 1)))
        y = int(rng.integers(0, size - side + 1))
        _paste(canvas, _by_name(char), side, x, y)
    return canvas


# -- examples ----------------------------------------------------------------------------------
def scene_example(rng) -> dict | None:
    """One scene's content, caption and labels; None when text and image labels conflict."""
    face_polarity, weather_polarity = (LABELS[int(i)] for i in rng.integers(0, 3, 2))
    face = str(rng.choice(FACES[face_polarity]))
    weather = str(rng.choice(WEATHER[weather_polarity]))
    image = image_label(face_polarity, weather_polarity)
    mood_polarity = image if rng.uniform() < 0.5 else LABELS[int(rng.integers(0, 3))]
    negated = rng.uniform() < 0.4
    if negated:  # the negated word expresses the flipped polarity
        mood_polarity = FLIP[mood_polarity]
    mood = str(rng.choice(MOODS[mood_polarity]))
    negation = str(rng.choice(NEGATIONS)) + " " if negated else ""
    sentence = str(rng.choice(TEMPLATES)).format(neg=negation, mood=mood)
    described = rng.uniform() < 0.5
    caption = f"{face} and {weather}. {sentence}" if described else sentence
    text = text_label(mood_polarity, negated)
    label = mvsa_label(text, image)
    if label is None:
        return None
    return dict(face=face, weather=weather, caption=caption, mood=mood, negated=negated,
                text_label=text, image_label=image, label=label)


def scene_examples(count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        example = scene_example(rng)
        if example is not None:
            out.append(example)
    return out


def emoji_names(limit: int | None, seed: int) -> list[str]:
    """Names of the emoji the font draws as one glyph (a seeded subset of `limit`)."""
    names = sorted(catalog())
    if limit is not None:
        names = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    chosen = []
    for name in names:
        if glyph(catalog()[name]) is not None:
            chosen.append(name)
            if limit is not None and len(chosen) == limit:
                break
    return sorted(chosen)


# -- writing -----------------------------------------------------------------------------------
FIELDS = ("image", "caption", "text_label", "image_label", "label")


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in FIELDS} for r in rows)


def generate(out: str | Path, *, train: int, test: int, emoji: int | None, seed: int = 0,
             size: int = 64) -> Path:
    """Write the emoji and scene splits, captions files and vocabulary into `out`."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = {"emoji": [], "train": [], "test": []}
    rng = np.random.default_rng((seed, 0))
    for i, name in enumerate(emoji_names(emoji, seed)):
        file = f"images/emoji_{i:05d}.png"
        render_emoji(catalog()[name], rng, size).save(out / file)
        rows["emoji"].append({"image": file, "caption": name})
    for split, count, offset in (("train", train, 1), ("test", test, 2)):
        rng = np.random.default_rng((seed, offset))
        for i, example in enumerate(scene_examples(count, seed * 10 + offset)):
            file = f"images/{split}_{i:06d}.png"
            render_scene(example["face"], example["weather"], rng, size).save(out / file)
            rows[split].append({"image": file, **example})
    for split, split_rows in rows.items():
        _write_csv(out / f"{split}.csv", split_rows)
    lexicon = [" ".join(t.format(neg=n + " ", mood=m) for n in NEGATIONS for m in ms)
               for t in TEMPLATES for ms in MOODS.values()]
    captions = [r["caption"] for r in rows["emoji"] + rows["train"]] + lexicon
    Vocabulary.build(captions).write(out / "vocab.txt")
    return out


def write_mvsa(out: str | Path, examples: list[dict], *, annotators: int, seed: int = 0,
               size: int = 64) -> Path:
    """Scenes in MVSA's layout: data/<id>.jpg + <id>.txt and labelResultAll.txt. With three
    annotators, two give the example's (text, image) labels and the third a random pair, so
    the majority is the example's own."""
    out = Path(out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    header = "ID\t" + "\t".join(["text,image"] * annotators)
    lines = [header]
    for i, e in enumerate(examples, start=1):
        render_scene(e["face"], e["weather"], rng, size).save(out / "data" / f"{i}.jpg")
        (out / "data" / f"{i}.txt").write_text(e["caption"] + "\n", encoding="utf-8")
        pairs = [f"{e['text_label']},{e['image_label']}"] * min(annotators, 2)
        if annotators == 3:
            other = [LABELS[int(j)] for j in rng.integers(0, 3, 2)]
            pairs.insert(int(rng.integers(0, 3)), ",".join(other))
        lines.append(f"{i}\t" + "\t".join(pairs))
    (out / "labelResultAll.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


# -- the source: generated once, then read from disk ---------------------------------------------
def data_section(**overrides) -> dict:
    """The ``data`` config of the runs that read the emoji scenes (image encoder, text encoder,
    TI-JEPA): the same files and vocabulary for all three."""
    return dict(
        dataset="emoji_scenes",
        path="",                  # "" = the cache folder named by `generate` ($JEPAX_DATA or ~/.cache/jepax)
        vocab="",                 # "" = <folder>/vocab.txt
        generate=dict(train=6000, test=2000, emoji=None, seed=0),  # None: every emoji the font draws
        image_size=48, channels=3, max_tokens=16, read_images=True,
        train_split="emoji+train",
        num_threads=1, prefetch=4, num_workers=0) | overrides

def _cache_root() -> Path:
    return Path(os.environ.get("JEPAX_DATA", Path.home() / ".cache" / "jepax"))


def ensure(data_config) -> Path:
    """The folder holding this config's emoji scenes, written first if it is not there yet."""
    g = data_config.generate
    size = data_config.image_size  # written at the size read: no resizing per example
    name = (f"emoji_scenes-v{VERSION}-train{g.train}-test{g.test}-emoji{g.emoji}-seed{g.seed}"
            f"-{size}px")
    root = Path(data_config.path) if data_config.path else _cache_root() / name
    if (root / "vocab.txt").is_file():
        return root
    log.info("writing the emoji scenes to %s (once; later runs read them from there)", root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent))
    try:
        generate(tmp, train=g.train, test=g.test, emoji=g.emoji, seed=g.seed, size=size)
        try:
            tmp.rename(root)
        except OSError:  # another process wrote it meanwhile
            if not (root / "vocab.txt").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def emoji_scenes_source(data_config, split: str):
    return captioned_source(data_config, split, root=ensure(data_config))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--emoji", type=int, default=None, help="how many emoji (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    generate(args.out, train=args.train, test=args.test, emoji=args.emoji, seed=args.seed)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
