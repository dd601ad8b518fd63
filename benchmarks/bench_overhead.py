"""What pytest-llmfit costs a large suite: wall time with the plugin against without it.

Not a test: run ``python benchmarks/bench_overhead.py [--tests 5000] [--reps 5] [--keep DIR]``.

It writes a suite of ``--tests`` trivial tests in a temporary directory, half of them
unmarked and half carrying llmfit markers (requires_vram, requires_ram, requires_gpu, and
requires_model on a header-only Llama 3.1 8B Q4_K_M stub with a few distinct settings, so
the header is read once and a handful of plans are cached). Every marked test fits the
simulated host, so both configurations execute the same test bodies and the difference is
the plugin's own work: options, decisions at collection, the setup check, the records.

Configurations, run interleaved ``--reps`` times after one warm-up each, every run a fresh
``python -m pytest -q -p no:cacheprovider`` process:

* ``without``: ``-p no:llmfit`` (markers registered in the suite's ini, so pytest does the
  same marker bookkeeping);
* ``with``: the plugin, ``--llmfit-hardware "rtx-4090, ram=64GB"`` (simulated: nothing is
  probed);
* the unmarked half alone, with and without the plugin and *no* ``--llmfit-hardware``: the
  plugin must cost nothing there, and must never import its probes (a conftest records
  ``sys.modules`` at session end).

Prints the median wall time of each and the ratios; the target is <= 1.05.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HARDWARE = "rtx-4090, ram=64GB"
STUB = "llama-3.1-8b-q4_k_m.gguf"
TESTS_PER_FILE = 100

# Every marker fits an RTX 4090 with 64 GB of RAM, so all tests run in both configurations.
MARKERS = (
    'pytest.mark.requires_vram("8GB")',
    'pytest.mark.requires_vram("16GB", per_device=True)',
    'pytest.mark.requires_vram("24GB")',
    'pytest.mark.requires_ram("16GB")',
    'pytest.mark.requires_ram("32GB", on_nofit="xfail")',
    'pytest.mark.requires_gpu(vendor="nvidia", min_compute_capability="8.0")',
    "pytest.mark.requires_gpu(1)",
    f'pytest.mark.requires_model("{STUB}")',
    f'pytest.mark.requires_model("{STUB}", n_ctx=8192)',
    f'pytest.mark.requires_model("{STUB}", n_ctx=16384, cache_type="q8_0", flash_attn="on")',
    f'pytest.mark.requires_model("{STUB}", n_ctx=4096, min_tokens_per_second=20)',
)

INI = """\
[pytest]
llmfit_models_dir = models
markers =
    requires_vram: pytest-llmfit
    requires_ram: pytest-llmfit
    requires_gpu: pytest-llmfit
    requires_model: pytest-llmfit
"""

# Records, at the end of every session, which of the plugin's heavy modules got imported.
CONFTEST = """\
import json
import os
import sys


def pytest_sessionfinish(session):
    path = os.environ.get("BENCH_MODULES_OUT")
    if path:
        watched = (
            "pytest_llmfit.hardware.probes",
            "pytest_llmfit.hardware.probes.nvidia",
            "pynvml",
            "llama_cpp",
        )
        with open(path, "w") as handle:
            json.dump({name: name in sys.modules for name in watched}, handle)
"""


def write_suite(root: Path, n_tests: int) -> None:
    """The suite: ``unmarked/`` and ``marked/``, ``TESTS_PER_FILE`` tests per file."""
    from pytest_llmfit.twins import write_twin

    (root / "pytest.ini").write_text(INI)
    (root / "conftest.py").write_text(CONFTEST)
    write_twin("llama-3.1-8b", root / "models" / STUB, quant="q4_k_m", header_only=True)
    n_marked = n_tests // 2
    for kind, count in (("unmarked", n_tests - n_marked), ("marked", n_marked)):
        directory = root / kind
        directory.mkdir()
        for start in range(0, count, TESTS_PER_FILE):
            lines = ["import pytest", ""]
            for i in range(start, min(start + TESTS_PER_FILE, count)):
                if kind == "marked":
                    lines.append(f"@{MARKERS[i % len(MARKERS)]}")
                lines += [f"def test_{kind}_{i}():", "    assert True", ""]
            (directory / f"test_{kind}_{start // TESTS_PER_FILE:03d}.py").write_text(
                "\n".join(lines)
            )


def pytest_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]


CONFIGS: dict[str, list[str]] = {
    "without": pytest_cmd("-p", "no:llmfit", "."),
    "with": pytest_cmd(f"--llmfit-hardware={HARDWARE}", "."),
    "unmarked, without": pytest_cmd("-p", "no:llmfit", "unmarked"),
    "unmarked, with": pytest_cmd("unmarked"),
}


def _env(modules_out: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMFIT_", "PYTEST_"))}
    # Steady state, as on a developer's machine: bytecode (and pytest's rewritten test
    # modules) cached by the warm-up run rather than compiled again in every process.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if modules_out is not None:
        env["BENCH_MODULES_OUT"] = str(modules_out)
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one pytest process."""
    # Output to a file, not a pipe: a pipe's reader would be timed along with pytest.
    with tempfile.TemporaryFile() as output:
        cpu = _children_cpu()
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
        elapsed = time.perf_counter() - start
        cpu = _children_cpu() - cpu
        if proc.returncode != 0:
            output.seek(0)
            tail = output.read().decode(errors="replace")[-3000:]
            sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return elapsed, cpu


def check_decisions(root: Path, n_tests: int) -> str:
    """One untimed run with a JSON report: every marked test decided ``run``."""
    report_path = root / "report.json"
    run_once(CONFIGS["with"] + [f"--llmfit-report-json={report_path}"], root, _env())
    report = json.loads(report_path.read_text())
    decisions: dict[str, int] = {}
    for test in report["tests"]:
        decisions[test["decision"]] = decisions.get(test["decision"], 0) + 1
    if decisions != {"run": n_tests // 2}:
        sys.exit(f"expected every marked test to run on {HARDWARE!r}, got {decisions}")
    return f"{len(report['tests'])} marked tests decided: {decisions}"


def check_nothing_probed(root: Path) -> dict[str, bool]:
    """The unmarked half with the plugin and no simulated host: which modules loaded."""
    out = root / "modules.json"
    run_once(CONFIGS["unmarked, with"], root, _env(out))
    loaded: dict[str, bool] = json.loads(out.read_text())
    return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=5000, help="tests in the suite (5000)")
    parser.add_argument("--reps", type=int, default=5, help="timed runs of each config (5)")
    parser.add_argument("--keep", type=Path, help="write the suite here and keep it")
    args = parser.parse_args(argv)

    root = args.keep or Path(tempfile.mkdtemp(prefix="llmfit-bench-"))
    if args.keep:
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
    try:
        write_suite(root, args.tests)
        print(f"suite: {args.tests} tests ({args.tests // 2} marked) in {root}")
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        print(check_decisions(root, args.tests))
        loaded = check_nothing_probed(root)
        print(f"unmarked half, plugin on, no --llmfit-hardware: modules loaded {loaded}")

        wall: dict[str, list[float]] = {name: [] for name in CONFIGS}
        cpu: dict[str, list[float]] = {name: [] for name in CONFIGS}
        for cmd in CONFIGS.values():  # warm-up: bytecode, rewritten tests, page cache
            run_once(cmd, root, _env())
        for rep in range(args.reps):
            for name, cmd in CONFIGS.items():
                seconds, cpu_seconds = run_once(cmd, root, _env())
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
            done = ", ".join(f"{name} {wall[name][-1]:.2f}s" for name in CONFIGS)
            print(f"  rep {rep + 1}/{args.reps}: {done}")
        print()
        print(f"median of {args.reps} runs, each a fresh pytest process:")
        print(f"  {'':<18} {'wall':>8} {'cpu':>8}   wall range")
        for name in CONFIGS:
            spread = f"{min(wall[name]):.2f}-{max(wall[name]):.2f} s"
            print(
                f"  {name:<18} {statistics.median(wall[name]):7.2f}s "
                f"{statistics.median(cpu[name]):7.2f}s   {spread}"
            )
        ok = True
        for label, key in (("whole suite", ""), ("unmarked half", "unmarked, ")):
            for metric, values in (("wall", wall), ("cpu", cpu)):
                ratio = statistics.median(values[f"{key}with"]) / statistics.median(
                    values[f"{key}without"]
                )
                verdict = "ok" if ratio <= 1.05 else "over the 1.05 target"
                print(f"ratio with/without, {label}, {metric} time: {ratio:.3f} ({verdict})")
                ok = ok and (ratio <= 1.05 or metric == "wall")
        print("(CPU time is the steadier figure on a shared machine; wall time is what users feel)")
        probes_or_llama = ("pytest_llmfit.hardware.probes", "pynvml", "llama_cpp")
        if any(loaded.get(name) for name in probes_or_llama):
            print("PROBLEM: the plugin imported its probes with no marker in the session")
            return 1
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
