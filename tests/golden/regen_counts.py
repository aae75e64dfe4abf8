"""Regenerate cnnlab's packaged zoo counts (src/cnnlab/analysis/zoo_counts.json) from the live counter.

The table is what `cnnlab models` prints without building every network, and the golden counts that
tests/test_golden_counts.py compares with a live count: one file, written only by this script. Review
the diff before committing: a changed number means a changed network or a changed counter.

    PYTHONPATH=src python tests/golden/regen_counts.py
"""

import json
from pathlib import Path

import cnnlab
from cnnlab.analysis import zoo

ABOUT = ("Parameters and multiply-accumulates of every registered cnnlab network at its family's standard "
         "input, as cnnlab.analysis.counting counts them (meta tensors, batch 1). Written by "
         "tests/golden/regen_counts.py; read by `cnnlab models`; every entry is checked against a live count "
         "by tests/test_golden_counts.py. A change detector of cnnlab's own code, not an independent "
         "check: the independent figures are in tests/golden/published and torchvision's metadata.")


def main() -> None:
    models = {name: zoo.live_counts(name) for name in cnnlab.list_models()}
    lines = [f"  {json.dumps(name)}: {json.dumps(entry)}" for name, entry in models.items()]
    text = "{\n" + f' "_about": {json.dumps(ABOUT)},\n "models": {{\n' + ",\n".join(lines) + "\n }\n}\n"
    path = Path(zoo.__file__).with_name(zoo.COUNTS_FILE)
    path.write_text(text)
    print(f"wrote {len(models)} entries to {path}")


if __name__ == "__main__":
    main()
