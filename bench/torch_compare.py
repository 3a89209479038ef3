#!/usr/bin/python3
"""Side-by-side training-step times: gradwatch's engine against PyTorch.

Runs bench/gradwatch_bench (Google Benchmark) and the same models in
PyTorch -- same shapes, batch, data size, loss, optimizer (SGD, momentum
0.9) and thread count -- in one invocation, and prints per configuration
both median step times, their ratio, the engine's GFLOP/s and its fraction
of the oneDNN matmul peak measured in the same run.

PyTorch is Debian's python3-torch. Run it against OpenBLAS
(libopenblas0-openmp), not the reference BLAS, or the comparison is
meaningless:

  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp \\
      /usr/bin/python3 bench/torch_compare.py --bench build/bench/gradwatch_bench

"--stats" adds the "full statistics every step" variant on both sides
(PyTorch gathering the same figures with hooks and .item(), as a user
would) and the cost of one Hessian estimate; "--bf16" adds BF16 (PyTorch's
CPU autocast to bfloat16).
"""

import argparse
import json
import math
import statistics
import subprocess
import sys
import time

import torch

CONFIGS = {  # name: (widths, batch) -- the table in bench/bench_specs.cc
    "tiny": ([2, 64, 64, 2], 64),
    "mnist_mlp": ([784, 1000, 500, 100, 10], 128),
    "wide": ([784, 1024, 1024, 1024, 10], 256),
    "deep": ([64] + [256] * 8 + [10], 128),
}


def flops_per_step(widths, batch):
    return 6.0 * batch * sum(a * b for a, b in zip(widths, widths[1:]))


def steps_per_run(widths, batch):
    return 20 if batch * widths[1] > 100000 else 200


def make_model(widths):
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i + 2 < len(widths):
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class TorchStats:
    """The per-step statistics gradwatch reports, gathered the usual way."""

    def __init__(self, model):
        self.model = model
        self.z = []
        for m in model:
            if isinstance(m, torch.nn.Linear):
                m.register_forward_hook(lambda mod, inp, out: self.z.append(out))

    def collect(self):
        figures = []
        for z in self.z:
            figures.append((z <= 0).all(0).float().mean().item())
            figures.append(z.mean().item())
            figures.append(z.std().item())
            figures.append(z.min().item())
            figures.append(z.max().item())
            figures.append((z < 0).float().mean().item())
        tiny = torch.finfo(torch.float32).tiny
        for p in self.model.parameters():
            g = p.grad
            a = g.abs()
            figures += [g.norm().item(), a.mean().item(), a.max().item(),
                        (g == 0).float().mean().item(),
                        ((a > 0) & (a < tiny)).sum().item(),
                        g.isnan().sum().item(), g.isinf().sum().item()]
            nz = a[(a > 0) & torch.isfinite(a)]
            exps = torch.frexp(nz).exponent - 1
            torch.bincount((exps + 149).clamp(min=0)).tolist()
            figures.append(p.norm().item())
        self.z.clear()
        return figures


def time_torch(widths, batch, threads, repetitions, with_stats, dtype):
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = make_model(widths)
    rows = 4 * batch
    # The engine's BLOBS data (bench/bench_specs.cc), same construction:
    # class k = i % classes, centers U(-5, 5)^features, x = c_k + N(0, 1).
    classes = widths[-1]
    centers = torch.rand(classes, widths[0]) * 10 - 5
    y_all = torch.arange(rows) % classes
    x_all = centers[y_all] + torch.randn(rows, widths[0])
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    stats = TorchStats(model) if with_stats else None
    steps = steps_per_run(widths, batch)
    order = torch.randperm(rows)
    position = [0]

    def step():
        if position[0] + batch > rows:
            order.copy_(torch.randperm(rows))
            position[0] = 0
        idx = order[position[0]:position[0] + batch]
        position[0] += batch
        x, y = x_all[idx], y_all[idx]
        opt.zero_grad(set_to_none=True)
        if dtype == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = loss_fn(model(x), y)
        else:
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if stats:
            stats.collect()
        return loss

    for _ in range(3):  # warm-up
        step()
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def run_gradwatch(bench, repetitions, names):
    pattern = "|".join(["BM_MatmulPeak"] + [f"BM_TrainStep/{n}/" for n in names])
    out = subprocess.run(
        [bench, f"--benchmark_filter={pattern}", "--benchmark_format=json",
         f"--benchmark_repetitions={repetitions}",
         "--benchmark_report_aggregates_only=true"],
        check=True, capture_output=True, text=True).stdout
    medians = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        # "BM_TrainStep/tiny/f32/nostats/min_time:1.000/real_time" ->
        # "BM_TrainStep/tiny/f32/nostats"
        name = "/".join(part for part in b["run_name"].split("/")
                        if not part.startswith(("min_time:", "real_time")))
        medians[name] = b
    return medians


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", default="build/bench/gradwatch_bench")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--stats", action="store_true",
                        help="also time full statistics every step and the "
                        "Hessian estimate")
    parser.add_argument("--bf16", action="store_true",
                        help="also time BF16 (PyTorch: autocast to bfloat16)")
    args = parser.parse_args()
    names = args.configs.split(",")

    gw = run_gradwatch(args.bench, args.repetitions, names)
    peak = gw["BM_MatmulPeak/f32"]["GFLOPs"]
    peak_bf16 = gw["BM_MatmulPeak/bf16"]["GFLOPs"]
    print(f"# torch {torch.__version__}, {args.threads} threads, "
          f"medians of {args.repetitions} runs; oneDNN matmul peak "
          f"f32 {peak:.0f} GFLOP/s, bf16 {peak_bf16:.0f} GFLOP/s")
    variants = [("f32/nostats", False, "f32")]
    if args.stats:
        variants.append(("f32/stats", True, "f32"))
    if args.bf16:
        variants.append(("bf16/nostats", False, "bf16"))
    print("| config | variant | gradwatch ms/step | PyTorch ms/step | "
          "speed-up | gradwatch GFLOP/s | % of matmul peak |")
    print("|---|---|---:|---:|---:|---:|---:|")
    step_ms = {}
    for name in names:
        widths, batch = CONFIGS[name]
        for variant, with_stats, dtype in variants:
            g_ms = gw[f"BM_TrainStep/{name}/{variant}"]["step_us"] / 1e3
            t_ms = time_torch(widths, batch, args.threads, args.repetitions,
                              with_stats, dtype) * 1e3
            step_ms[(name, variant)] = (g_ms, t_ms)
            gflops = flops_per_step(widths, batch) / (g_ms * 1e-3) * 1e-9
            ref_peak = peak_bf16 if dtype == "bf16" else peak
            print(f"| {name} | {variant} | {g_ms:.3f} | {t_ms:.3f} | "
                  f"{t_ms / g_ms:.2f}x | {gflops:.0f} | "
                  f"{100 * gflops / ref_peak:.0f}% |")
            sys.stdout.flush()
    if not args.stats:
        return
    print()
    print("| config | statistics every step: gradwatch | PyTorch hooks + "
          ".item() | one Hessian estimate (20 iterations), ms |")
    print("|---|---:|---:|---:|")
    for name in names:
        g0, t0 = step_ms[(name, "f32/nostats")]
        g1, t1 = step_ms[(name, "f32/stats")]
        curv = gw[f"BM_TrainStep/{name}/f32/curvature10"]["step_us"] / 1e3
        print(f"| {name} | +{100 * (g1 / g0 - 1):.1f}% | "
              f"+{100 * (t1 / t0 - 1):.0f}% | {10 * (curv - g1):.2f} |")


if __name__ == "__main__":
    main()
