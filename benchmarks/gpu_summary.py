"""One table from the JSON files that ``gancr bench speed --json`` (gancr.bench.speed) writes."""

import json
import sys
from pathlib import Path


def main(paths: list[str]) -> None:
    rows = []
    for path in paths:
        r = json.loads(Path(path).read_text())
        base = r["rows"][0]["images_per_s"]
        for row in r["rows"]:
            rows.append((Path(path).stem, row["name"], f"{row['images_per_s']:.1f}", f"{row['tflops']:.1f}",
                         f"{100 * row.get('fraction_of_bf16_peak', 0):.1f}%",
                         "-" if row["peak_memory_mib"] is None else f"{row['peak_memory_mib']:.0f}",
                         f"{row['first_step_s']:.0f}", f"{base / row['images_per_s']:.2f}x"))
        lat = r.get("inference_ms") or {}
        if lat:
            print(f"{Path(path).stem} inference ms: " + ", ".join(
                f"{k} {v:.1f}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in lat.items()))
    if not rows:
        print("no results")
        return
    device = json.loads(Path(paths[0]).read_text())["device_name"]
    print(f"device: {device}")
    header = ("run", "side", "img/s", "TFLOP/s", "bf16 peak", "peak MiB", "first s", "gancr/side")
    widths = [max(len(str(x[i])) for x in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    main(sys.argv[1:])
