"""Federated versus pooled versus single-site training of the lesion model.

3 synthetic providers (lesion prevalence 0.3 / 0.5 / 0.7, different scanner noise) x N
patients' CT slices; the same model, recipe, seed and epoch budget (`--rounds` rounds of one
local epoch; as many epochs for the pooled and single-site models). AUC per patient on a
common held-out test set (patients of every provider that no site trained on) and on each
site's own held-out patients (site and prevalence are confounded on a pooled test set: a
chance-level model can score 0.6-0.7 there). The training half runs in the learning venv
(`oncofed_learning.bench`); this script makes the images and writes
bench/results/learning.json.

    python bench/learning.py [--patients 400] [--test-patients 100] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from oncofed.learning.worker import learning_python
from oncofed.synth import iter_patients, make_provider
from oncofed.synth.writers.dicom import build_instance

SEED = 11


def write_cases(folder: Path, provider_index: int, start: int, count: int) -> Path:
    """CT slices of patients start..start+count-1 of a provider, and their case list."""
    provider = make_provider(provider_index)
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for record in iter_patients(provider_index, count, SEED, start=start, instances=2):
        for study in record.studies:
            for series in study.series:
                if series.kind != "image" or series.modality != "CT":
                    continue
                for number in range(1, series.num_instances + 1):
                    path = folder / f"{series.uid}-{number}.dcm"
                    ds = build_instance(provider, record, study, series, number, SEED)
                    ds.save_as(path, enforce_file_format=True)
                    cases.append(
                        {
                            "path": str(path),
                            "patient": record.patient.mrn,
                            "label": int(record.lesion.present),
                        }
                    )
    listing = folder / "cases.json"
    listing.write_text(json.dumps({"cases": cases}))
    return listing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=400)
    parser.add_argument("--test-patients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--model", default="small-cnn-2d")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "learning.json"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oncofed-bench-learning-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        sites = [write_cases(root / f"site{i}", i, 0, args.patients) for i in range(3)]
        tests = [
            write_cases(root / f"test{i}", i, args.patients, args.test_patients) for i in range(3)
        ]
        common = root / "test.json"
        common.write_text(
            json.dumps({"cases": [c for t in tests for c in json.loads(t.read_text())["cases"]]})
        )
        generated = time.perf_counter() - started
        out = root / "result.json"
        subprocess.run(
            [
                str(learning_python()),
                "-m",
                "oncofed_learning.bench",
                "--sites",
                *map(str, sites),
                "--site-tests",
                *map(str, tests),
                "--test",
                str(common),
                "--rounds",
                str(args.rounds),
                "--model",
                args.model,
                "--out",
                str(out),
            ],
            check=True,
        )
        result = json.loads(out.read_text())
    result = {
        "benchmark": "learning",
        "patients_per_site": args.patients,
        "test_patients_per_site": args.test_patients,
        "prevalence": [0.3, 0.5, 0.7],
        "seconds_generating_images": round(generated, 1),
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("auc", "seconds_per_round", "bytes_per_round")}))


if __name__ == "__main__":
    main()
