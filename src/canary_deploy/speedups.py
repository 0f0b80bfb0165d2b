"""The balancer's hot modules compiled with mypyc, used only when they match the sources.

The request path (parsing, routing, proxying, metrics) is plain typed Python; mypyc
compiles the same files to C extensions that run it about a third faster per request
(`bench/balancer.py`). They are built outside the source tree (`python -m
canary_deploy.speedups build`, which `make` runs) with a manifest of the
sources' hashes, and `canary_deploy.balancer` puts them first on its `__path__` only if
every hash still matches: an edited source, another Python, a failed build or
CANARY_PURE_PYTHON=1 all mean the pure-Python modules, never a stale copy.

This module is never compiled itself: it decides which modules are loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

# The modules compiled together (they call each other natively: all or none is used).
MODULES = (
    "clock",
    "exchange",
    "flow",
    "http11",
    "limits",
    "metrics",
    "parsed_response",
    "parser",
    "proxy",
    "response_head",
    "routing",
    "rules",
    "upstream",
)
GROUP = "canary_deploy.balancer._compiled"  # the shared library's module name, + "__mypyc"
MANIFEST = "compiled.json"
PURE_ENV = "CANARY_PURE_PYTHON"
PACKAGE_DIR = Path(__file__).resolve().parent / "balancer"


def build_dir() -> Path:
    """Where the compiled modules live: inside the interpreter's prefix (the venv), so
    they always match the Python that loads them."""
    return Path(sys.prefix) / "share" / "canary-deploy" / "compiled"


def _sources_digest(package_dir: Path) -> dict[str, str]:
    return {
        name: hashlib.sha256((package_dir / f"{name}.py").read_bytes()).hexdigest()
        for name in MODULES
    }


def _abi() -> str:
    return str(sysconfig.get_config_var("EXT_SUFFIX"))


def status(root: Path | None = None) -> tuple[bool, str]:
    """Whether the compiled modules can be used, and why (for `canary config`)."""
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return False, f"pure Python ({PURE_ENV} is set)"
    compiled = (root or build_dir()) / "canary_deploy" / "balancer"
    try:
        manifest = json.loads((compiled / MANIFEST).read_text())
    except (OSError, ValueError):
        return False, "pure Python (not compiled: run `make` or `python -m " + __name__ + " build`)"
    if manifest.get("abi") != _abi():
        return False, "pure Python (compiled for another Python: build again)"
    try:
        sources = _sources_digest(PACKAGE_DIR)
    except OSError:
        return False, "pure Python (a compiled module's source is missing)"
    if manifest.get("sources") != sources:
        return False, "pure Python (sources changed since they were compiled: build again)"
    return True, f"compiled with mypyc ({compiled})"


def search_path(package_path: list[str], root: Path | None = None) -> list[str]:
    """The balancer package's `__path__`: the compiled directory first when usable."""
    usable, _ = status(root)
    if not usable:
        return package_path
    compiled = str((root or build_dir()) / "canary_deploy" / "balancer")
    return [compiled, *package_path]


_SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify
paths, group, target = sys.argv[1], sys.argv[2], sys.argv[3]
setup(
    name="canary-deploy-compiled",
    ext_modules=mypycify(paths.split(","), group_name=group, target_dir=target),
    script_args=sys.argv[4:],
)
"""


class BuildFailed(Exception):
    """mypyc or the C compiler failed; `args[0]`: the last lines of their output."""


def build(root: Path | None = None, quiet: bool = True) -> Path:
    """Compile MODULES into `root` (default build_dir()) and write the manifest last, so
    an interrupted build is never used. Raises BuildFailed (CalledProcessError when not
    quiet) when mypyc or the C compiler fails."""
    root = root or build_dir()
    src = PACKAGE_DIR.parent.parent  # the directory holding canary_deploy/
    digest = _sources_digest(PACKAGE_DIR)
    with tempfile.TemporaryDirectory(prefix="canary-mypyc-") as tmp:
        staging = Path(tmp) / "lib"
        paths = ",".join(f"canary_deploy/balancer/{name}.py" for name in MODULES)
        command = [
            sys.executable,
            "-c",
            _SETUP,
            paths,
            GROUP,
            str(Path(tmp) / "c"),
            "build_ext",
            f"--build-lib={staging}",
            f"--build-temp={Path(tmp) / 'temp'}",
        ]
        env = {**os.environ, "MYPY_CACHE_DIR": str(Path(tmp) / "mypy-cache")}
        if quiet:
            done = subprocess.run(command, cwd=src, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise BuildFailed((done.stdout + done.stderr).strip().splitlines()[-5:])
        else:
            subprocess.run(command, cwd=src, env=env, check=True)
        compiled = root / "canary_deploy" / "balancer"
        if compiled.exists():
            shutil.rmtree(compiled)
        shutil.copytree(staging / "canary_deploy" / "balancer", compiled)
    (compiled / MANIFEST).write_text(json.dumps({"abi": _abi(), "sources": digest}, indent=1))
    return compiled


def main(argv: list[str]) -> int:
    """`python -m canary_deploy.speedups build|status`."""
    if argv[:1] == ["build"]:
        if shutil.which("cc") is None and shutil.which("gcc") is None:
            print("no C compiler: the balancer runs as pure Python")
            return 0
        print("compiling the balancer with mypyc (about a minute)...", flush=True)
        try:
            where = build(quiet="-v" not in argv)
        except BuildFailed as exc:
            print("compiling the balancer failed; it runs as pure Python. Last lines:")
            print("\n".join(f"  {line}" for line in exc.args[0]))
            return 0
        except (subprocess.CalledProcessError, OSError) as exc:
            print(f"compiling the balancer failed ({exc}); it runs as pure Python")
            return 0
        print(f"balancer compiled with mypyc into {where}")
        return 0
    if argv[:1] == ["status"]:
        print(status()[1])
        return 0
    print("usage: python -m canary_deploy.speedups build [-v] | status")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
