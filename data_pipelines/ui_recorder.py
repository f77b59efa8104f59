"""Scripted screen recordings of user intents: the default data of UI-JEPA (Fu et al., 2024).

A pure-Python renderer (Pillow) draws a small phone UI: a contacts app (list, chat, call
screen), settings (toggles), a shopping list (with an add dialog), a photo gallery (grid, photo
view, delete dialog), an alarm clock (hour picker), a mail inbox (long-press menu), search (a
typed query and results) and a volume slider. Ten intent templates with parameters ("send a
message to {contact}", "turn on {setting}", ...) are acted out by a cursor that moves to and
taps the controls, the screen changing as a phone would. Each recording is written as an
H.264 MP4 (PyAV) and listed with its intent string in ``<split>.jsonl``; the UI-JEPA source
(data_pipelines/ui_recordings.py) reads the folder back, as it reads a user's own recordings.

Deterministic per seed: one RNG per recording, seeded by (seed, split, index), draws the
parameter, the list orders, the theme and the timing; rendering uses no other randomness.

Splits, as the paper's IIT/IIW few-shot and zero-shot splits: ``train`` and ``test`` hold
recordings of the *seen* intent templates (``test`` with new parameters, orders and timings),
``zeroshot`` only recordings of the templates held out of training (default: "call {contact}"
and "turn off {setting}"), so a decoder must state an intent it never saw as text.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

VERSION = "ui-recordings-v2"  # v2: dialogs no longer draw a stray white screen edge
SIZE = 128           # rendered and stored resolution (pixels, square)
FPS = 8

CONTACTS = {"alice": (231, 76, 60), "bob": (52, 152, 219), "carol": (46, 204, 113),
            "dave": (155, 89, 182), "erin": (241, 196, 15)}
SETTINGS = {"dark mode": (44, 62, 80), "wifi": (52, 152, 219), "bluetooth": (41, 128, 185),
            "airplane mode": (230, 126, 34)}
ITEMS = {"milk": (236, 240, 241), "eggs": (243, 156, 18), "bread": (211, 84, 0),
         "apples": (192, 57, 43), "coffee": (110, 70, 40)}
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth")
HOURS = (6, 7, 8, 9, 10, 11)
QUERIES = ("weather", "news", "maps", "music")
LEVELS = (0, 25, 50, 75, 100)

TEMPLATES = ("send a message to {slot}", "call {slot}", "turn on {slot}", "turn off {slot}",
             "add {slot} to the shopping list", "delete the {slot} photo",
             "set an alarm for {slot} am", "mark the {slot} email as read", "search for {slot}",
             "set the volume to {slot} percent")
ZERO_SHOT = (1, 3)   # "call {slot}", "turn off {slot}": never in train or test


@dataclass(frozen=True)
class Shot:
    """One screen state held for `weight` of the recording's time, the cursor moving to
    `cursor` (x, y in [0, 1]) during its first half; `tap` draws a press ring once there."""
    draw: Callable[[ImageDraw.ImageDraw, "Theme"], None]
    cursor: tuple[float, float]
    tap: bool = False
    weight: float = 1.0


@dataclass(frozen=True)
class Theme:
    dark: bool
    accent: tuple[int, int, int]

    @property
    def bg(self):
        return (30, 30, 34) if self.dark else (246, 246, 248)

    @property
    def fg(self):
        return (230, 230, 230) if self.dark else (30, 30, 30)

    @property
    def row(self):
        return (48, 48, 54) if self.dark else (255, 255, 255)


_FONT = None


def _font():
    global _FONT
    if _FONT is None:
        _FONT = ImageFont.load_default()
    return _FONT


def _px(v: float) -> int:
    return int(round(v * SIZE))


def _header(d, t: Theme, title: str):
    d.rectangle([0, 0, SIZE, _px(0.14)], fill=t.accent)
    d.text((_px(0.05), _px(0.03)), title, fill=(255, 255, 255), font=_font())


def _rows(d, t: Theme, labels, colors, *, top=0.18, height=0.13, bold=(), right=None):
    """A list of rows with a coloured icon and a label; `right[i]` draws row i's control."""
    for i, (label, color) in enumerate(zip(labels, colors)):
        y0 = top + i * height
        d.rectangle([_px(0.03), _px(y0), _px(0.97), _px(y0 + height - 0.015)], fill=t.row)
        d.ellipse([_px(0.05), _px(y0 + 0.015), _px(0.05 + height - 0.045),
                   _px(y0 + height - 0.03)], fill=color)
        d.text((_px(0.2), _px(y0 + 0.03)), label, fill=t.fg, font=_font())
        if i in bold:
            d.rectangle([_px(0.2), _px(y0 + height - 0.04), _px(0.6), _px(y0 + height - 0.03)],
                        fill=t.fg)
        if right is not None and right[i] is not None:
            right[i](d, y0, height)


def _row_centre(i, top=0.18, height=0.13):
    return 0.5, top + i * height + height / 2


def _toggle(on: bool, t: Theme):
    def draw(d, y0, h):
        box = [_px(0.76), _px(y0 + 0.03), _px(0.93), _px(y0 + h - 0.045)]
        d.rounded_rectangle(box, radius=_px(0.03), fill=t.accent if on else (150, 150, 150))
        x = 0.85 if on else 0.77
        d.ellipse([_px(x), _px(y0 + 0.035), _px(x + 0.07), _px(y0 + h - 0.05)], fill=(255, 255, 255))
    return draw


def _dialog(d, t: Theme, title: str, text: str = "", button: str = "OK", danger=False):
    d.rectangle([_px(0.1), _px(0.3), _px(0.9), _px(0.7)], fill=t.row, outline=t.fg)
    d.text((_px(0.15), _px(0.34)), title, fill=t.fg, font=_font())
    if text:
        d.rectangle([_px(0.15), _px(0.45), _px(0.85), _px(0.55)], outline=t.accent)
        d.text((_px(0.17), _px(0.46)), text, fill=t.fg, font=_font())
    d.rectangle([_px(0.55), _px(0.58), _px(0.85), _px(0.67)],
                fill=(192, 57, 43) if danger else t.accent)
    d.text((_px(0.6), _px(0.59)), button, fill=(255, 255, 255), font=_font())


DIALOG_BUTTON = (0.7, 0.625)


def _keyboard(d, t: Theme):
    for r in range(3):
        for c in range(8):
            x, y = 0.04 + c * 0.117, 0.7 + r * 0.09
            d.rectangle([_px(x), _px(y), _px(x + 0.1), _px(y + 0.075)],
                        fill=(90, 90, 96) if t.dark else (210, 210, 215))


def _typed(text: str, fraction: float) -> str:
    return text[:max(1, int(round(len(text) * fraction)))]


# -- the ten intents: each returns the slot value and the shots that act it out ---------------
def _contacts_list(t, order):
    colors = [CONTACTS[n] for n in order]
    return lambda d, th: (_header(d, th, "Contacts"), _rows(d, th, order, colors))


def _send_message(rng, t):
    order = list(rng.permutation(list(CONTACTS)))
    who = order[rng.integers(len(order))]
    i = order.index(who)
    message = str(rng.choice(["hi", "on my way", "see you", "call me"]))

    def chat(typed, sent=False):
        def draw(d, th):
            _header(d, th, who)
            d.ellipse([_px(0.8), _px(0.02), _px(0.92), _px(0.12)], fill=CONTACTS[who])
            if sent:
                d.rounded_rectangle([_px(0.4), _px(0.2), _px(0.95), _px(0.3)], radius=4,
                                    fill=th.accent)
                d.text((_px(0.43), _px(0.22)), message, fill=(255, 255, 255), font=_font())
            d.rectangle([_px(0.03), _px(0.58), _px(0.8), _px(0.66)], outline=th.fg)
            d.text((_px(0.05), _px(0.59)), typed, fill=th.fg, font=_font())
            d.polygon([(_px(0.84), _px(0.57)), (_px(0.97), _px(0.62)), (_px(0.84), _px(0.67))],
                      fill=th.accent)
            if not sent:
                _keyboard(d, th)
        return draw
    shots = [Shot(_contacts_list(t, order), (0.5, 0.9)),
             Shot(_contacts_list(t, order), _row_centre(i), tap=True),
             Shot(chat(""), (0.4, 0.62), tap=True),
             Shot(chat(_typed(message, 0.5)), (0.3, 0.8), tap=True),
             Shot(chat(message), (0.6, 0.75), tap=True),
             Shot(chat(message), (0.9, 0.62), tap=True),
             Shot(chat("", sent=True), (0.9, 0.62))]
    return who, shots


def _call(rng, t):
    order = list(rng.permutation(list(CONTACTS)))
    who = order[rng.integers(len(order))]
    i = order.index(who)

    def detail(d, th):
        _header(d, th, who)
        d.ellipse([_px(0.35), _px(0.2), _px(0.65), _px(0.5)], fill=CONTACTS[who])
        d.text((_px(0.38), _px(0.53)), who, fill=th.fg, font=_font())
        d.ellipse([_px(0.2), _px(0.65), _px(0.35), _px(0.8)], fill=(46, 204, 113))
        d.rectangle([_px(0.6), _px(0.65), _px(0.8), _px(0.8)], fill=th.accent)

    def calling(d, th):
        d.rectangle([0, 0, SIZE, SIZE], fill=(20, 90, 50))
        d.ellipse([_px(0.35), _px(0.15), _px(0.65), _px(0.45)], fill=CONTACTS[who])
        d.text((_px(0.3), _px(0.5)), f"calling {who}", fill=(255, 255, 255), font=_font())
        d.ellipse([_px(0.42), _px(0.75), _px(0.58), _px(0.91)], fill=(192, 57, 43))
    shots = [Shot(_contacts_list(t, order), (0.5, 0.9)),
             Shot(_contacts_list(t, order), _row_centre(i), tap=True),
             Shot(detail, (0.275, 0.725), tap=True), Shot(calling, (0.3, 0.6), weight=2)]
    return who, shots


def _settings(rng, t, turn_on: bool):
    order = list(rng.permutation(list(SETTINGS)))
    which = order[rng.integers(len(order))]
    i = order.index(which)
    states = {name: bool(rng.integers(2)) for name in order}
    states[which] = not turn_on

    def screen(flipped):
        def draw(d, th):
            _header(d, th, "Settings")
            on = dict(states, **({which: turn_on} if flipped else {}))
            _rows(d, th, order, [SETTINGS[n] for n in order],
                  right=[_toggle(on[n], th) for n in order])
        return draw
    toggle = (0.85, _row_centre(i)[1])
    shots = [Shot(screen(False), (0.3, 0.9)), Shot(screen(False), toggle, tap=True, weight=1.5),
             Shot(screen(True), toggle, weight=1.5)]
    return which, shots


def _add_item(rng, t):
    present = list(rng.permutation(list(ITEMS)))[:int(rng.integers(1, 3))]
    item = str(rng.choice([n for n in ITEMS if n not in present]))

    def screen(items):
        def draw(d, th):
            _header(d, th, "Shopping")
            _rows(d, th, items, [ITEMS[n] for n in items])
            d.ellipse([_px(0.78), _px(0.8), _px(0.94), _px(0.96)], fill=th.accent)
            d.text((_px(0.84), _px(0.84)), "+", fill=(255, 255, 255), font=_font())
        return draw

    def typing(fraction):
        return lambda d, th: (screen(present)(d, th),
                              _dialog(d, th, "New item", _typed(item, fraction), "Add"))
    shots = [Shot(screen(present), (0.5, 0.5)), Shot(screen(present), (0.86, 0.88), tap=True),
             Shot(typing(0.4), (0.5, 0.5)), Shot(typing(1.0), (0.6, 0.5)),
             Shot(typing(1.0), DIALOG_BUTTON, tap=True), Shot(screen(present + [item]), (0.7, 0.6))]
    return item, shots


def _delete_photo(rng, t):
    colors = [tuple(int(c) for c in rng.integers(40, 230, 3)) for _ in ORDINALS]
    k = int(rng.integers(len(ORDINALS)))

    def cell(j):
        r, c = divmod(j, 3)
        return 0.04 + c * 0.32, 0.2 + r * 0.3

    def grid(photos):
        def draw(d, th):
            _header(d, th, "Photos")
            for j, color in enumerate(photos):
                x, y = cell(j)
                d.rectangle([_px(x), _px(y), _px(x + 0.28), _px(y + 0.26)], fill=color)
        return draw

    def view(confirm):
        def draw(d, th):
            d.rectangle([0, 0, SIZE, SIZE], fill=(0, 0, 0))
            d.rectangle([_px(0.1), _px(0.2), _px(0.9), _px(0.7)], fill=colors[k])
            d.rectangle([_px(0.44), _px(0.82), _px(0.56), _px(0.94)], fill=(192, 57, 43))
            if confirm:
                _dialog(d, th, "Delete photo?", button="Delete", danger=True)
        return draw
    x, y = cell(k)
    shots = [Shot(grid(colors), (0.5, 0.95)), Shot(grid(colors), (x + 0.14, y + 0.13), tap=True),
             Shot(view(False), (0.5, 0.88), tap=True), Shot(view(True), DIALOG_BUTTON, tap=True),
             Shot(grid(colors[:k] + colors[k + 1:]), (0.5, 0.95))]
    return ORDINALS[k], shots


def _alarm(rng, t):
    hour = int(rng.choice(HOURS))

    def listing(alarms):
        def draw(d, th):
            _header(d, th, "Alarm")
            for j, h in enumerate(alarms):
                d.text((_px(0.1), _px(0.2 + 0.12 * j)), f"{h:02d}:00", fill=th.fg, font=_font())
            d.ellipse([_px(0.78), _px(0.8), _px(0.94), _px(0.96)], fill=th.accent)
        return draw

    def picker(selected):
        def draw(d, th):
            _header(d, th, "New alarm")
            for j, h in enumerate(HOURS):
                y = 0.18 + 0.09 * j
                if h == selected:
                    d.rectangle([_px(0.3), _px(y), _px(0.7), _px(y + 0.08)], fill=th.accent)
                d.text((_px(0.42), _px(y)), f"{h:02d}", fill=th.fg, font=_font())
            d.rectangle([_px(0.55), _px(0.8), _px(0.9), _px(0.9)], fill=th.accent)
        return draw
    existing = [int(h) for h in rng.choice([h for h in HOURS if h != hour] + [12],
                                           int(rng.integers(0, 3)), replace=False)]
    y = 0.22 + 0.09 * HOURS.index(hour)
    shots = [Shot(listing(existing), (0.5, 0.5)), Shot(listing(existing), (0.86, 0.88), tap=True),
             Shot(picker(None), (0.5, y)), Shot(picker(hour), (0.5, y), tap=True),
             Shot(picker(hour), (0.72, 0.85), tap=True), Shot(listing(existing + [hour]), (0.5, 0.6))]
    return str(hour), shots


def _mark_read(rng, t):
    senders = list(rng.permutation(list(CONTACTS)))[:4]
    k = int(rng.integers(4))
    unread = set(int(j) for j in rng.choice(4, int(rng.integers(1, 4)), replace=False)) | {k}

    def inbox(marked, menu=False):
        def draw(d, th):
            _header(d, th, "Inbox")
            bold = unread - ({k} if marked else set())
            _rows(d, th, senders, [CONTACTS[s] for s in senders], bold=bold)
            if menu:
                y = _row_centre(k)[1]
                d.rectangle([_px(0.4), _px(y), _px(0.95), _px(y + 0.12)], fill=th.row, outline=th.fg)
                d.text((_px(0.43), _px(y + 0.02)), "mark read", fill=th.fg, font=_font())
        return draw
    centre = _row_centre(k)
    shots = [Shot(inbox(False), (0.5, 0.9)), Shot(inbox(False), centre, tap=True, weight=1.5),
             Shot(inbox(False, menu=True), (0.65, centre[1] + 0.06), tap=True),
             Shot(inbox(True), (0.65, 0.9))]
    return ORDINALS[k], shots


def _search(rng, t):
    query = str(rng.choice(QUERIES))

    def screen(typed, results=False, keyboard=True):
        def draw(d, th):
            _header(d, th, "Search")
            d.rounded_rectangle([_px(0.05), _px(0.17), _px(0.95), _px(0.27)], radius=4,
                                outline=th.accent, fill=th.row)
            d.text((_px(0.08), _px(0.18)), typed, fill=th.fg, font=_font())
            if results:
                for j in range(3):
                    y = 0.32 + 0.12 * j
                    d.rectangle([_px(0.05), _px(y), _px(0.95), _px(y + 0.1)], fill=th.row)
                    d.text((_px(0.08), _px(y + 0.01)), f"{query} {j + 1}", fill=th.fg,
                           font=_font())
            if keyboard:
                _keyboard(d, th)
        return draw
    shots = [Shot(screen("", keyboard=False), (0.5, 0.6)), Shot(screen(""), (0.5, 0.22), tap=True),
             Shot(screen(_typed(query, 0.5)), (0.3, 0.75), tap=True),
             Shot(screen(query), (0.7, 0.85), tap=True),
             Shot(screen(query, results=True, keyboard=False), (0.5, 0.5), weight=1.5)]
    return query, shots


def _volume(rng, t):
    start = int(rng.choice(LEVELS))
    level = int(rng.choice([v for v in LEVELS if v != start]))

    def slider(value):
        def draw(d, th):
            _header(d, th, "Sound")
            d.text((_px(0.08), _px(0.3)), "volume", fill=th.fg, font=_font())
            x = 0.1 + 0.8 * value / 100
            d.rectangle([_px(0.1), _px(0.48), _px(0.9), _px(0.52)], fill=(150, 150, 150))
            d.rectangle([_px(0.1), _px(0.48), _px(x), _px(0.52)], fill=th.accent)
            d.ellipse([_px(x - 0.05), _px(0.45), _px(x + 0.05), _px(0.55)], fill=th.accent)
            d.text((_px(0.45), _px(0.6)), f"{value}%", fill=th.fg, font=_font())
        return draw
    pos = lambda v: (0.1 + 0.8 * v / 100, 0.5)
    mid = (start + level) // 2
    shots = [Shot(slider(start), (0.5, 0.8)), Shot(slider(start), pos(start), tap=True),
             Shot(slider(mid), pos(mid), tap=True), Shot(slider(level), pos(level), tap=True),
             Shot(slider(level), (0.5, 0.8))]
    return str(level), shots


SCRIPTS = (_send_message, _call, lambda rng, t: _settings(rng, t, True),
           lambda rng, t: _settings(rng, t, False), _add_item, _delete_photo, _alarm, _mark_read,
           _search, _volume)
ACCENTS = ((52, 120, 246), (0, 150, 136), (103, 58, 183), (233, 30, 99))


# -- recording ---------------------------------------------------------------------------------
def record(template: int, rng: np.random.Generator, frames: int) -> tuple[np.ndarray, str, str]:
    """(frames (T, SIZE, SIZE, 3) uint8, intent string, slot value) of one scripted recording."""
    theme = Theme(dark=bool(rng.integers(2)), accent=ACCENTS[int(rng.integers(len(ACCENTS)))])
    slot, shots = SCRIPTS[template](rng, theme)
    weights = np.array([s.weight for s in shots]) * rng.uniform(0.7, 1.3, len(shots))
    ends = np.cumsum(weights) / weights.sum()
    out = np.empty((frames, SIZE, SIZE, 3), np.uint8)
    for f in range(frames):
        time = (f + 0.5) / frames
        k = int(np.searchsorted(ends, time))
        start = ends[k - 1] if k else 0.0
        progress = (time - start) / (ends[k] - start)
        before = shots[k - 1].cursor if k else (0.5, 1.0)
        move = min(1.0, 2 * progress)
        x, y = (b + (c - b) * move for b, c in zip(before, shots[k].cursor))
        image = Image.new("RGB", (SIZE, SIZE), theme.bg)
        draw = ImageDraw.Draw(image)
        shots[k].draw(draw, theme)
        r = _px(0.035)
        draw.ellipse([_px(x) - r, _px(y) - r, _px(x) + r, _px(y) + r], fill=(255, 80, 80),
                     outline=(255, 255, 255))
        if shots[k].tap and move >= 1.0:
            draw.ellipse([_px(x) - 2 * r, _px(y) - 2 * r, _px(x) + 2 * r, _px(y) + 2 * r],
                         outline=(255, 80, 80), width=2)
        out[f] = np.asarray(image)
    return out, TEMPLATES[template].format(slot=slot), slot


def split_templates(split: str, zero_shot=ZERO_SHOT) -> list[int]:
    if split == "zeroshot":
        return sorted(zero_shot)
    return [t for t in range(len(TEMPLATES)) if t not in zero_shot]


def write_mp4(path: Path, frames: np.ndarray, fps: int = FPS) -> None:
    """H.264 MP4 (yuv420p, near-lossless crf 12, one encoder thread so bytes repeat)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps,
                                      options={"crf": "12", "preset": "veryfast"})
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def write_dataset(folder: Path, sizes: dict[str, int], *, frames: int = 16, seed: int = 0,
                  zero_shot=ZERO_SHOT) -> Path:
    """Write `sizes[split]` recordings per split (templates in turn) to `folder`: videos in
    <split>/NNNNN.mp4 and one JSON line per recording in <split>.jsonl; manifest.json last."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in sizes.items():
        templates = split_templates(split, zero_shot)
        (folder / split).mkdir(exist_ok=True)
        lines = []
        for i in range(count):
            template = templates[i % len(templates)]
            rng = np.random.default_rng([seed, split_key(split), i])
            video, intent, slot = record(template, rng, frames)
            name = f"{split}/{i:05d}.mp4"
            write_mp4(folder / name, video)
            lines.append(json.dumps({"video": name, "intent": intent, "slot": slot,
                                     "template": template}))
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "manifest.json").write_text(json.dumps(
        {"version": VERSION, "sizes": sizes, "frames": frames, "seed": seed,
         "zero_shot": list(zero_shot), "templates": TEMPLATES}, indent=1))
    return folder


def split_key(split: str) -> int:
    """A stable integer per split name (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(split.encode()).digest()[:4], "little")


def default_folder(sizes: dict[str, int], frames: int, seed: int = 0) -> Path:
    """The generated recordings for these settings, written on first use into the cache."""
    from data_pipelines.points import cache_dir

    key = hashlib.sha256(json.dumps([VERSION, sorted(sizes.items()), frames, seed]).encode())
    folder = cache_dir() / f"{VERSION}-{key.hexdigest()[:10]}"
    if not (folder / "manifest.json").exists():
        log.info("writing the scripted UI recordings to %s (once): %s", folder, sizes)
        write_dataset(folder, sizes, frames=frames, seed=seed)
    return folder
