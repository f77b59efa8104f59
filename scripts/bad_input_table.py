"""Try every bad input of tests/bad_inputs.py and write what jepax says and keeps into
docs/reliability.md, between the `<!-- bad-inputs -->` marker lines (so the table is regenerated,
not typed).

    python scripts/bad_input_table.py            # about 2 minutes on 2 CPU cores

Config values and workdirs run through `jepax.train.run` against a copy of a workdir trained
for 3 steps (the message is what `python -m jepax.main` prints after "jepax: error: ");
command lines run `python -m jepax.main` itself. "Kept" is checked, not assumed: the workdir's
files are hashed before and after.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"  # as the tests
os.environ.setdefault("JAX_PLATFORMS", "cpu")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jepax import train  # noqa: E402
from tests import bad_inputs  # noqa: E402
from tests.helpers import small_ijepa, tree_digest  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"
START, END = "<!-- bad-inputs -->", "<!-- /bad-inputs -->"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def try_in_process(make_workdir, config, template: Path, scratch: Path):
    """(message, kept) of train.run(config, workdir) on a fresh copy of the template."""
    run = scratch / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(template, run)
    workdir = make_workdir(run)
    before = tree_digest(run)
    try:
        train.run(config, workdir)
        message = "(no error)"
    except Exception as e:  # noqa: BLE001 - reported in the table
        message = f"{type(e).__name__}: {e}"
    kept = "workdir byte-identical" if tree_digest(run) == before else "WORKDIR CHANGED"
    return message, kept


def try_command_line(args, scratch: Path):
    result = subprocess.run([sys.executable, "-m", "jepax.main", *args,
                             f"--workdir={scratch / 'cli'}"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    kept = "nothing created" if not (scratch / "cli").exists() else "WORKDIR CREATED"
    return f"exit {result.returncode}: {last}", kept


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        template = scratch / "template"
        train.run(small_ijepa(train__run_steps=3), template)
        for case in bad_inputs.CONFIG_VALUES:
            message, kept = try_in_process(lambda run: run, case.config(), template, scratch)
            fresh = scratch / "fresh"
            try:
                train.run(case.config(), fresh)
            except Exception:  # noqa: BLE001 - same error, checked by the tests
                pass
            kept += "; a new workdir is not created" if not fresh.exists() else "; NEW WORKDIR"
            rows.append((case.name, " ".join(case.flags), message, kept))
            print(rows[-1], flush=True)
        for case in bad_inputs.WORKDIRS:
            message, kept = try_in_process(case.prepare, small_ijepa(), template, scratch)
            rows.append((case.name, "(a run's workdir, prepared)", message, kept))
            print(rows[-1], flush=True)
        for case in bad_inputs.COMMAND_LINES + bad_inputs.ABSL_COMMAND_LINES:
            message, kept = try_command_line(case.args, scratch)
            rows.append((case.name, " ".join(a.replace(str(ROOT) + "/", "") for a in case.args),
                         message, kept))
            print(rows[-1], flush=True)
        table = ["| bad input | flags | message | kept |", "| --- | --- | --- | --- |"]
        readable = lambda text: text.replace(str(scratch / "run"), "<workdir>").replace(
            str(ROOT) + "/", "")
        table += [f"| {cell(name)} | `{cell(flags)}` | {cell(readable(message))} | {kept} |"
                  for name, flags, message, kept in rows]
    text = DOC.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"no {START} ... {END} lines in {DOC}")
    head, rest = text.split(START, 1)
    new = head + START + "\n" + "\n".join(table) + "\n" + END + rest.split(END, 1)[1]
    DOC.write_text(new)
    print(f"{len(rows)} bad inputs written to {DOC}")


if __name__ == "__main__":
    main()
