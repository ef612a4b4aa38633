"""Entropy of one descriptor set computed by several processes with ``jax.distributed``.

Every process loads the same descriptors (or memory-maps the same ``.npy``), draws the same
query rows (same seed), sums its share of them exactly against all rows, and the shares are
gathered with a collective (gloo on CPU), so every process ends with the same estimate.

    # two processes on this machine, compared with one process:
    python distributed_entropy.py --launch 2
    # one process of a job (what --launch and SLURM start on each task):
    python distributed_entropy.py --coordinator HOST:PORT --num-processes P --process-id I
    # under SLURM (srun sets the coordinator, process count and id):
    srun python distributed_entropy.py --data descriptors.npy --stderr 0.01 --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--launch", type=int, metavar="P", help="start P local processes")
    parser.add_argument("--coordinator", help="HOST:PORT of process 0 (default: from SLURM)")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    parser.add_argument("--data", help=".npy/.npz descriptors (default: synthetic)")
    parser.add_argument("--n-env", type=int, default=4000, help="synthetic rows (default 4000)")
    parser.add_argument("--n-queries", type=int, help="sampled queries (default: all, exact)")
    parser.add_argument("--stderr", type=float, help="target standard error (nats)")
    parser.add_argument("--control-rows", default="auto", help="control variate rows (or 0)")
    parser.add_argument("--h", type=float, default=0.015, help="bandwidth in 1/Å")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="JSON written by process 0")
    return parser.parse_args(argv)


def descriptors(args):
    """The data every process sees: a file, or synthetic descriptor-like rows."""
    import numpy as np

    if args.data:
        return args.data  # read block by block, memory-mapped
    rng = np.random.default_rng(args.seed)
    centres = rng.normal(scale=0.05, size=(8, 63))
    label = rng.integers(0, 8, args.n_env)
    return centres[label] + rng.normal(scale=0.0015, size=(args.n_env, 63))


def estimate(args, distributed: bool) -> dict:
    import jaxinfo

    x = descriptors(args)
    n_queries = args.n_queries or (256 if args.stderr else 2**62)
    start = time.perf_counter()
    control = args.control_rows if args.control_rows == "auto" else int(args.control_rows)
    result = jaxinfo.estimate_entropy(
        x,
        h=args.h,
        n_queries=n_queries,
        seed=args.seed,
        control_rows=control,
        target_stderr=args.stderr,
        distributed=distributed,
    )
    return {
        "entropy": float(result.value),
        "stderr": float(result.stderr),
        "n_queries": result.n_queries,
        "n_total": result.n_total,
        "seconds": time.perf_counter() - start,
    }


def worker(args) -> None:
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if args.coordinator:
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    else:
        jax.distributed.initialize()  # SLURM, Open MPI, ... provide the values
    result = estimate(args, distributed=True)
    if not args.data:
        # The exact estimator on a mesh over every process's devices gives the same value.
        import jaxinfo

        mesh = jaxinfo.data_mesh()
        result["mesh_entropy"] = float(jaxinfo.entropy(descriptors(args), args.h, mesh=mesh))
        result["mesh_devices"] = int(mesh.size)
    result["process_count"] = jax.process_count()
    result["process_index"] = jax.process_index()
    print(json.dumps(result), flush=True)
    if args.out and jax.process_index() == 0:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)
    jax.distributed.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def launch(args) -> dict:
    """Starts ``args.launch`` workers on localhost, then computes the same with one process."""
    coordinator = f"localhost:{free_port()}"
    common = ["--n-env", str(args.n_env), "--h", str(args.h), "--seed", str(args.seed)]
    common += ["--data", args.data] if args.data else []
    common += ["--n-queries", str(args.n_queries)] if args.n_queries else []
    common += ["--control-rows", str(args.control_rows)]
    common += ["--stderr", str(args.stderr)] if args.stderr else []
    common += ["--coordinator", coordinator, "--num-processes", str(args.launch)]
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, *common, "--process-id", str(i)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(args.launch)
    ]
    results = []
    for process in processes:
        out, _ = process.communicate(timeout=600)
        if process.returncode:
            raise SystemExit(f"a worker failed with status {process.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    single = estimate(args, distributed=False)
    summary = {"processes": results, "single": single}
    for r in results:
        print(
            f"process {r['process_index']}/{r['process_count']}: H = {r['entropy']:.6f} "
            f"± {r['stderr']:.6f} nats ({r['n_queries']} queries, {r['seconds']:.1f} s)"
        )
    print(f"one process: H = {single['entropy']:.6f} ± {single['stderr']:.6f} nats")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(summary, handle, indent=2)
    return summary


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.launch:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        launch(args)
    else:
        worker(args)


if __name__ == "__main__":
    main()
