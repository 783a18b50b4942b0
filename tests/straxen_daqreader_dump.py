"""Run straxen 4.0.0's DAQReader on live_data and dump what it produces (oracle; .venv-straxen).

Usage: straxen_daqreader_dump.py CONFIG_JSON OUT_DIR. CONFIG_JSON holds run_id, daq_input_dir,
readout_threads, run_start_time, daq_chunk_duration, daq_overlap_chunk_duration, daq_compressor,
record_length. For every raw_records type it writes <type>.npy (all rows) and <type>.json
(chunk boundaries and row counts).
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import strax
import straxen

warnings.filterwarnings("ignore")

config = json.loads(Path(sys.argv[1]).read_text())
out = Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
run_id = config.pop("run_id")
config["channel_map"] = straxen.contexts.common_config["channel_map"]
st = strax.Context(storage=[], register=[straxen.DAQReader], config=config)
boundaries = {t: [] for t in straxen.DAQReader.provides}
arrays = {t: [] for t in straxen.DAQReader.provides}
plugin = st._get_plugins(tuple(straxen.DAQReader.provides), run_id)["raw_records"]
plugin.setup()
chunk_i = 0
while plugin.is_ready(chunk_i):
    result = plugin.compute(chunk_i)
    for name, chunk in result.items():
        boundaries[name].append([int(chunk.start), int(chunk.end), len(chunk)])
        arrays[name].append(chunk.data)
    chunk_i += 1
for name in boundaries:
    data = np.concatenate(arrays[name]) if arrays[name] else np.zeros(0, strax.raw_record_dtype())
    np.save(out / f"{name}.npy", data)
    (out / f"{name}.json").write_text(json.dumps(boundaries[name]))
print(json.dumps({"chunks": chunk_i}))
