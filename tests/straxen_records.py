"""Run straxen 4.0.0's PulseProcessing on raw_records from a .npy file (oracle; .venv-straxen).

Usage: straxen_records.py INPUT_DIR OUT_DIR OPTIONS_JSON. INPUT_DIR holds chunk_<i>.npy files and
bounds.json ([[start, end], ...]); for each chunk the plugin's compute is called and records,
pulse_counts are written as <type>_<i>.npy.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import strax
import straxen

warnings.filterwarnings("ignore")
source, out, options = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
st = strax.Context(
    storage=[],
    register=[straxen.DAQReader, straxen.PulseProcessing],
    config={"n_tpc_pmts": 494, **options},
)
plugin = st._get_plugins(("records",), "000001")["records"]
plugin.setup()
bounds = json.loads((source / "bounds.json").read_text())
for i, (start, end) in enumerate(bounds):
    raw = np.load(source / f"chunk_{i}.npy")
    result = plugin.compute(raw_records=raw, start=start, end=end)
    for name in ("records", "pulse_counts", "veto_regions"):
        np.save(out / f"{name}_{i}.npy", result[name])
print(json.dumps({"chunks": len(bounds)}))
