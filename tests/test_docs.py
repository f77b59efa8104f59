"""The docs site builds with warnings as errors, and its generated pages carry the README and
every experiment's recorded results tables."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT


def build(tmp_path, config="mkdocs.yml"):
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", config,
                           "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True,
                          text=True)


def test_docs_site_builds_strict_with_generated_results_and_home_pages(tmp_path):
    done = build(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    site = tmp_path / "site"
    results = (site / "results" / "index.html").read_text()
    # a row recorded in experiments/ijepa.py's docstring, rendered as a table
    row = next(l.strip() for l in (ROOT / "experiments" / "ijepa.py").read_text().splitlines()
               if l.strip().startswith("| pretrained |"))
    assert "<table>" in results and row.split("|")[2].strip() in results
    assert "Quickstart" in (site / "index.html").read_text()  # the README
    for page in ("architecture", "reliability", "multihost", "benchmarks"):
        assert (site / page / "index.html").exists(), page


def test_docs_build_fails_on_a_broken_link(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# x\n\nSee [the guide](missing.md).\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"site_name: t\ndocs_dir: {docs}\nstrict: true\n")
    done = build(tmp_path, str(config))
    assert done.returncode != 0 and "missing.md" in done.stderr
