"""mkdocs hooks: pages made from files outside docs/ at build time, so the site never holds a
stale copy. The README is the home page, benchmarks/README.md the benchmarks page, and
'Results' collects the results tables between `<results...>` / `<paper...>` markers in every
experiment config's docstring (the tables the recorders write there)."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^\s*<((?:results|paper)(?::[\w-]+)?)>\s*$(.*?)^\s*</\1>\s*$", re.M | re.S)


def results_page() -> str:
    parts = ["# Results", "",
             "The tables each experiment's recorder wrote into its config's docstring, with the "
             "paper's numbers where the config has them. Each config's docstring says how the "
             "numbers were measured and how to read them.", ""]
    for path in sorted((ROOT / "experiments").glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        blocks = [(tag, textwrap.dedent(body).strip("\n")) for tag, body in BLOCK.findall(doc)]
        if not blocks:
            continue
        parts += [f"## {path.stem}", "", doc.splitlines()[0], ""]
        for tag, body in blocks:
            label = tag.replace(":", ": ")
            parts += [f"**{label}** (`experiments/{path.name}`)", "",
                      body or "(not recorded yet)", ""]
    return "\n".join(parts)


def on_files(files, config):
    pages = {"index.md": (ROOT / "README.md").read_text(),
             "benchmarks.md": (ROOT / "benchmarks" / "README.md").read_text(),
             "results.md": results_page()}
    for uri, text in pages.items():
        files.append(File.generated(config, uri, content=text))
    return files
