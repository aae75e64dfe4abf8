"""Regenerate tests/golden/counts.json from the current zoo (review the diff before committing)."""

import json
from pathlib import Path

import torch

import cnnlab
from cnnlab.analysis.counting import count_macs, count_params


def main() -> None:
    counts = {}
    for name in cnnlab.list_models():
        info = cnnlab.get_model_info(name)
        with torch.device("meta"):
            model = cnnlab.create_model(name)
        counts[name] = {
            "input_size": list(info.input_size),
            "params": count_params(model),
            "macs": count_macs(model, info.input_size),
        }
    path = Path(__file__).with_name("counts.json")
    path.write_text(json.dumps(counts, indent=1) + "\n")
    print(f"wrote {len(counts)} entries to {path}")


if __name__ == "__main__":
    main()
