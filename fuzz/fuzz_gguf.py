"""Coverage-guided fuzzing of the GGUF reader with atheris (libFuzzer for Python).

    pip install atheris
    python fuzz/make_corpus.py                                  # seeds, if fuzz/corpus/ is missing
    python fuzz/fuzz_gguf.py -max_total_time=600 fuzz/corpus    # fuzz for 10 minutes

libFuzzer saves each input that reaches new code into the first corpus directory: fuzz a
copy of fuzz/corpus/ to keep the committed seeds as generated (see fuzz/README.md).

The property: for any bytes, :func:`pytest_llmfit.engine.gguf.read_gguf` returns a ``GGUFFile`` or
raises ``GGUFError``. Anything else is a crash that libFuzzer saves as ``crash-<sha1>``:

* any other exception (re-raised, so atheris prints the Python traceback);
* a call running past ``-timeout`` seconds (default here 1: libFuzzer's watchdog, ``timeout-*``);
* the process growing past ``-rss_limit_mb`` (default here 1024 MiB, ``oom-*``); the reader
  is bounded by the file size, and inputs are at most ``-max_len`` bytes (libFuzzer's
  default: the largest seed).

Each input is written to one file on tmpfs (``/dev/shm`` when there is one), rewritten in
place every iteration, named ``fuzz-00001-of-00002.gguf`` with a valid shard 2 beside it: an
input without ``split.count`` is read as a single model, one that declares a 2-file split
(the ``split_00001.gguf`` seed) has its second shard read and cross-checked as well.

Reproduce a crash: ``python fuzz/fuzz_gguf.py crash-<sha1>`` (libFuzzer runs a file argument
once). Without atheris installed, the same command replays the given files or directories
through the same check, so the corpus doubles as a regression suite.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the package from this checkout
sys.path.insert(0, str(HERE))

from make_corpus import split_shard  # noqa: E402  (imports tests/gguf_bytes.py)

try:
    import atheris
except ImportError:  # replay mode, see main()
    atheris = None

if atheris is not None:
    with atheris.instrument_imports(include=["pytest_llmfit"]):
        from pytest_llmfit.engine.gguf import reader as gguf
        from pytest_llmfit.errors import GGUFError
else:
    from pytest_llmfit.engine.gguf import reader as gguf
    from pytest_llmfit.errors import GGUFError

# The reader's first read covers 4 MiB, more than any input here: on inputs of odd length
# it reads 64 bytes first instead, so the code that grows the buffer is fuzzed as well.
FIRST_CHUNK = gguf._FIRST_CHUNK
SMALL_CHUNK = 64

DEFAULTS = ("-timeout=1", "-rss_limit_mb=1024")


def _scratch() -> Path:
    """This process's directory on tmpfs. libFuzzer ends the process with exit(), which runs
    no Python cleanup, so each start removes the directories of processes that are gone."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    for old in base.glob("llmfit-fuzz-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    mine = base / f"llmfit-fuzz-{os.getpid()}"
    mine.mkdir(exist_ok=True)
    return mine


SCRATCH = _scratch()
TARGET = SCRATCH / "fuzz-00001-of-00002.gguf"
SHARD_2 = SCRATCH / "fuzz-00002-of-00002.gguf"
SHARD_2.write_bytes(split_shard(1))
_FD = os.open(TARGET, os.O_RDWR | os.O_CREAT, 0o600)


def check(data: bytes) -> None:
    """Read ``data`` as a GGUF file; anything but success or GGUFError propagates."""
    os.ftruncate(_FD, 0)
    os.pwrite(_FD, data, 0)
    gguf._FIRST_CHUNK = SMALL_CHUNK if len(data) % 2 else FIRST_CHUNK
    with contextlib.suppress(GGUFError):
        gguf.read_gguf(TARGET)


def _replay(paths: list[str]) -> int:
    files = [
        p
        for arg in paths
        for p in (sorted(Path(arg).iterdir()) if Path(arg).is_dir() else [Path(arg)])
    ]
    for path in files:
        check(path.read_bytes())
    print(f"replayed {len(files)} inputs without atheris: no failure")
    return 0


def main(argv: list[str]) -> int:
    if atheris is None:
        print("atheris is not installed (pip install atheris): replaying the inputs once")
        try:
            return _replay([a for a in argv[1:] if not a.startswith("-")])
        finally:
            shutil.rmtree(SCRATCH, ignore_errors=True)
    given = {a.split("=", 1)[0] for a in argv if a.startswith("-")}
    argv = argv[:1] + [d for d in DEFAULTS if d.split("=", 1)[0] not in given] + argv[1:]
    atheris.Setup(argv, check)
    atheris.Fuzz()  # does not return: libFuzzer exits the process
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
