"""What a process start costs: every job of the pipeline and every test that runs `snakemake` or
`rnnlm` is a new Python process, so its imports are paid again each time. Side by side, in turns,
in one run: MXNet as `rnnlm.mx` imports it (without the optional onnx and scipy.stats) against
the same with both imported first (mxnet then binds them, as it did before), and Snakemake's
start; each with the environment's bytecode (what `make setup` compiles) and without it (an
empty pycache prefix and PYTHONDONTWRITEBYTECODE, as on a machine that sets it and never
compiled).

    .venv/bin/python benchmarks/startup.py [--runs 7]

One JSON line per case: median CPU seconds (user + system) and wall seconds of the process, and
the ratio of each case's CPU to its baseline's, measured pair by pair.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
CASES = {  # name: (argv, the case it is compared with)
    "mxnet with onnx, scipy.stats": ([sys.executable, "-c", "import onnx, scipy.stats, rnnlm.mx"],
                                     None),
    "rnnlm.mx": ([sys.executable, "-c", "import rnnlm.mx"], "mxnet with onnx, scipy.stats"),
    "snakemake --version": ([str(BIN / "snakemake"), "--version"], None),
}


def timed(argv, env):
    """CPU and wall seconds of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="counted runs of each case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as empty:
        envs = {"bytecode": dict(os.environ),
                "no bytecode": {**os.environ, "PYTHONPYCACHEPREFIX": empty,
                                "PYTHONDONTWRITEBYTECODE": "1"}}
        runs = {(case, env): [] for case in CASES for env in envs}
        for turn in range(args.runs + 1):  # the first turn warms the caches and is not counted
            for (case, env), times in runs.items():
                measured = timed(CASES[case][0], envs[env])
                if turn:
                    times.append(measured)
    for (case, env), times in runs.items():
        base = CASES[case][1]
        row = {"case": case, "env": env,
               "cpu_s": round(statistics.median(cpu for cpu, _ in times), 3),
               "wall_s": round(statistics.median(wall for _, wall in times), 3)}
        against = [(base, env)] if base else []
        if env == "bytecode":
            against.append((case, "no bytecode"))
        for other in against:
            row[f"cpu_ratio_to {' / '.join(other)}"] = round(statistics.median(
                a[0] / b[0] for a, b in zip(times, runs[other], strict=True)), 3)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
