#!/usr/bin/python3
"""Side-by-side training-step times: gradwatch's engine against PyTorch.

Runs bench/gradwatch_bench (Google Benchmark) and the same models in
PyTorch -- same shapes, batch, data size, loss, optimizer (SGD, momentum
0.9) and thread count -- in one invocation, and prints per configuration
both median step times, the median of their paired ratios, the engine's
GFLOP/s and its fraction of the oneDNN matmul peak measured in the same
run. Each repetition times every configuration on both sides back to back
(the engine in a fresh process per benchmark), so that a slow minute of the
machine falls on both sides of a ratio.

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


class TorchRun:
    """One configuration and variant in PyTorch, built once and warmed up;
    time() gives the mean step time of one repetition, in seconds."""

    def __init__(self, widths, batch, threads, with_stats, dtype):
        torch.manual_seed(0)
        torch.set_num_threads(threads)
        self.model = make_model(widths)
        rows = 4 * batch
        # The engine's BLOBS data (bench/bench_specs.cc), same construction:
        # class k = i % classes, centers U(-5, 5)^features, x = c_k + N(0, 1).
        classes = widths[-1]
        centers = torch.rand(classes, widths[0]) * 10 - 5
        self.y_all = torch.arange(rows) % classes
        self.x_all = centers[self.y_all] + torch.randn(rows, widths[0])
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01,
                                   momentum=0.9)
        self.stats = TorchStats(self.model) if with_stats else None
        self.dtype = dtype
        self.threads = threads
        self.batch = batch
        self.rows = rows
        self.steps = steps_per_run(widths, batch)
        self.order = torch.randperm(rows)
        self.position = 0
        for _ in range(3):  # warm-up
            self.step()

    def step(self):
        if self.position + self.batch > self.rows:
            self.order.copy_(torch.randperm(self.rows))
            self.position = 0
        idx = self.order[self.position:self.position + self.batch]
        self.position += self.batch
        x, y = self.x_all[idx], self.y_all[idx]
        self.opt.zero_grad(set_to_none=True)
        if self.dtype == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = self.loss_fn(self.model(x), y)
        else:
            loss = self.loss_fn(self.model(x), y)
        loss.backward()
        self.opt.step()
        if self.stats:
            self.stats.collect()
        return loss

    def time(self):
        # Other processes ran since the last call: wake PyTorch's threads and
        # refill the caches first, as the engine's run does before it times.
        torch.set_num_threads(self.threads)
        for _ in range(3):
            self.step()
        start = time.perf_counter()
        for _ in range(self.steps):
            self.step()
        return (time.perf_counter() - start) / self.steps


def run_gradwatch(bench, name):
    """One repetition of the Google Benchmark `name` (e.g.
    "BM_TrainStep/tiny/f32/nostats") in a fresh process; its counters."""
    out = subprocess.run(
        [bench, f"--benchmark_filter=^{name}/", "--benchmark_format=json",
         "--benchmark_repetitions=1"],
        check=True, capture_output=True, text=True).stdout
    benchmarks = json.loads(out)["benchmarks"]
    if len(benchmarks) != 1:
        sys.exit(f"{bench}: {len(benchmarks)} results for {name}")
    return benchmarks[0]


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

    variants = [("f32/nostats", False, "f32")]
    if args.stats:
        variants.append(("f32/stats", True, "f32"))
    if args.bf16:
        variants.append(("bf16/nostats", False, "bf16"))
    torch_runs = {}
    for name in names:
        widths, batch = CONFIGS[name]
        for variant, with_stats, dtype in variants:
            torch_runs[(name, variant)] = TorchRun(widths, batch, args.threads,
                                                   with_stats, dtype)

    # The machine's speed drifts over minutes (other tenants, caches), so
    # each repetition times every configuration on both sides back to back,
    # and ratios are taken within a repetition before their median.
    peaks = {"f32": [], "bf16": []}
    g_ms, t_ms, curvature_ms = {}, {}, {}
    for _ in range(args.repetitions):
        for dtype in peaks:
            peaks[dtype].append(
                run_gradwatch(args.bench, f"BM_MatmulPeak/{dtype}")["GFLOPs"])
        for name in names:
            for variant, _, _ in variants:
                key = (name, variant)
                g = run_gradwatch(args.bench, f"BM_TrainStep/{name}/{variant}")
                g_ms.setdefault(key, []).append(g["step_us"] / 1e3)
                t_ms.setdefault(key, []).append(torch_runs[key].time() * 1e3)
            if args.stats:
                c = run_gradwatch(args.bench,
                                  f"BM_TrainStep/{name}/f32/curvature10")
                curvature_ms.setdefault(name, []).append(c["step_us"] / 1e3)

    def ratio(a, b):
        return statistics.median(x / y for x, y in zip(a, b))

    median = statistics.median
    peak = {dtype: median(v) for dtype, v in peaks.items()}
    print(f"# torch {torch.__version__}, {args.threads} threads, "
          f"medians of {args.repetitions} paired repetitions; oneDNN matmul "
          f"peak f32 {peak['f32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} "
          "GFLOP/s")
    print("| config | variant | gradwatch ms/step | PyTorch ms/step | "
          "speed-up | gradwatch GFLOP/s | % of matmul peak |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in names:
        widths, batch = CONFIGS[name]
        for variant, _, dtype in variants:
            g, t = g_ms[(name, variant)], t_ms[(name, variant)]
            gflops = flops_per_step(widths, batch) / (median(g) * 1e-3) * 1e-9
            print(f"| {name} | {variant} | {median(g):.3f} | {median(t):.3f} "
                  f"| {ratio(t, g):.2f}x | {gflops:.0f} | "
                  f"{100 * gflops / peak[dtype]:.0f}% |")
    if not args.stats:
        return
    print()
    print("| config | statistics every step: gradwatch | PyTorch hooks + "
          ".item() | one Hessian estimate (20 iterations), ms |")
    print("|---|---:|---:|---:|")
    for name in names:
        g0, t0 = g_ms[(name, "f32/nostats")], t_ms[(name, "f32/nostats")]
        g1, t1 = g_ms[(name, "f32/stats")], t_ms[(name, "f32/stats")]
        hessian = median(10 * (c - s) for c, s in zip(curvature_ms[name], g1))
        print(f"| {name} | {100 * (ratio(g1, g0) - 1):+.1f}% | "
              f"{100 * (ratio(t1, t0) - 1):+.0f}% | {hessian:.2f} |")


if __name__ == "__main__":
    main()
