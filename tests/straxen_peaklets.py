"""straxen 4.0.0's Peaklets and vanilla classification on records from .npy files (oracle).

Usage: straxen_peaklets.py INPUT_DIR OUT_DIR OPTIONS_JSON (records_<i>.npy, bounds.json).
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
opts = dict(straxen.contexts.common_opts_vanilla)
opts.pop("check_available", None)
st = strax.Context(storage=[], config=straxen.contexts.common_config_vanilla, **opts)
to_pe = np.asarray(options.pop("to_pe"))
st.set_config({"n_tpc_pmts": 494, "n_top_pmts": 253, "gain_model": 1.0, **options})
plugin = st._get_plugins(("peaklets",), "000001")["peaklets"]
plugin.setup()
plugin.to_pe = to_pe  # straxen resolves gains from its database; give them directly
classifier = st._get_plugins(("peaklet_classification",), "000001")["peaklet_classification"]
classifier.setup()
merger = st._get_plugins(("merged_s2s",), "000001")["merged_s2s"]
merger.setup()
merger.to_pe = to_pe
peaks_plugin = st._get_plugins(("peaks",), "000001")["peaks"]
peaks_plugin.setup()
basics = st._get_plugins(("peak_basics",), "000001")["peak_basics"]
basics.setup()
bounds = json.loads((source / "bounds.json").read_text())
for i, (start, end) in enumerate(bounds):
    records = np.load(source / f"records_{i}.npy")
    result = plugin.compute(records=records, start=start, end=end)
    for name in ("peaklets", "lone_hits"):
        np.save(out / f"{name}_{i}.npy", result[name])
    types = classifier.compute(peaklets=result["peaklets"])
    np.save(out / f"peaklet_classification_{i}.npy", types)
    merged_dtype = strax.merged_dtype([types.dtype, result["peaklets"].dtype])
    merged_input = strax.merge_arrs([result["peaklets"], types], dtype=merged_dtype)
    merged = merger.compute(peaklets=merged_input, lone_hits=result["lone_hits"])
    np.save(out / f"merged_s2s_{i}.npy", merged)
    peaks = peaks_plugin.compute(peaklets=merged_input, merged_s2s=merged)
    np.save(out / f"peaks_{i}.npy", peaks)
    np.save(out / f"peak_basics_{i}.npy", basics.compute(peaks=peaks))
print(json.dumps({"chunks": len(bounds)}))
