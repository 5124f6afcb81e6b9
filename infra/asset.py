"""Builds the one Lambda code asset both functions share, without Docker.

The asset is the contents of `functions/` (package `img2img`) plus the runtime requirements of
`requirements.txt`, installed as Linux wheels for Lambda's architecture and Python version:

    pip install --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64
                --only-binary=:all: --python-version 3.13 --implementation cp --target ...

Lambda's /var/task is read-only, so Python cannot write bytecode there: every module without
its .pyc would be compiled from source on every cold start. The asset ships a .pyc for every
module, compiled by the runtime's Python (the builder refuses any other) as unchecked-hash
bytecode (PEP 552) in `__pycache__/<name>.cpython-313.pyc`, where the import system looks:
nothing in them depends on the build's path, time or hash seed, so unchanged sources give an
unchanged asset. botocore's and boto3's data keep only the services the functions call
(BOTOCORE_SERVICES); tests/local/test_asset_twin.py creates every client in the trimmed asset.

`build_twin()` builds the same asset for this machine's architecture (only the wheels' platform
tag differs) into .build/twin/: the tests and `make bench` import it as Lambda would.

Two caches make a rebuild with nothing changed a no-op, and a source-only change cheap:

    .build/deps/<requirements hash>/   the installed wheels (pip runs only when this is new)
    .build/lambda/                     deps + sources: the directory CDK packages
    .build/lambda.sha256               the hash of everything that went into .build/lambda/

boto3/botocore are bundled (requirements.txt pins them): the runtime's copy lags the SDK
releases that add Bedrock models and fields, and bundling runs the exact versions the unit
tests ran. Python 3.13 is the Lambda runtime because it is the newest CPython `make test` can run
the function code on (the Makefile builds .venv with it); every dependency ships cp313 manylinux
aarch64 wheels (pip fails the build otherwise: --only-binary=:all:).

Used by synth (infra/stack.py calls `build_asset()`) and by `make asset` (`python -m infra.asset`).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = ROOT / "functions"
REQUIREMENTS = ROOT / "requirements.txt"
BUILD_DIR = ROOT / ".build"

# The Lambda platform the asset is built for. infra/functions.py maps these to the CDK runtime
# and architecture, so the wheels and the function always agree.
PYTHON_VERSION = "3.13"
ARCHITECTURE = "arm64"
TWIN_BUILD_DIR = BUILD_DIR / "twin"
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
# The AWS services the functions create clients for (handlers/wiring.py: s3, dynamodb, sqs,
# bedrock-runtime; adapters/model_catalog.py: bedrock; EventBridge: events). botocore's and
# boto3's data keep only these; a client for any other raises UnknownServiceError, which the
# twin test (building every client the functions create) would show. botocore's top-level
# files (endpoints, partitions, retry and default configuration) all stay.
BOTOCORE_SERVICES = ("bedrock", "bedrock-runtime", "dynamodb", "events", "s3", "sqs")
# Where the code runs on Lambda: the path compiled into the bytecode (Python replaces it with
# the file's real path when it loads a .pyc, so it only keeps the bytes independent of the build).
LAMBDA_TASK_ROOT = "/var/task"

_IGNORED_NAMES = {"__pycache__", ".DS_Store", ".pytest_cache", ".mypy_cache"}
_IGNORED_SUFFIXES = (".pyc", ".pyo")
# Installed but never loaded on Lambda (globs under the install): console scripts; Pillow's
# native modules for what the functions never do (AVIF, drawing text, Tk; Pillow imports them
# only on use) and the bundled libraries only those load (readelf -d: NEEDED). 8.9 MiB of 48.
_PRUNED_FROM_DEPS = (
    "bin",
    "PIL/_avif.*.so",
    "PIL/_imagingft.*.so",
    "PIL/_imagingtk.*.so",
    *(f"pillow.libs/{lib}-*" for lib in ("libavif", "libfreetype", "libharfbuzz", "libbrotli*", "libpng16")),
)


@dataclass(frozen=True)
class Platform:
    """Lambda's architecture name ("arm64" or "x86_64") and what pip and the files call it."""

    architecture: str

    @property
    def machine(self) -> str:
        return {"arm64": "aarch64", "x86_64": "x86_64"}[self.architecture]

    @property
    def tags(self) -> tuple[str, ...]:
        return (f"manylinux_2_28_{self.machine}", f"manylinux2014_{self.machine}")

    @property
    def native_modules(self) -> tuple[str, ...]:
        """Native modules that must be present, built for the target (proves the wheels are its)."""
        suffix = f"cpython-{PYTHON_VERSION.replace('.', '')}-{self.machine}-linux-gnu.so"
        return (f"PIL/_imaging.{suffix}", f"pydantic_core/_pydantic_core.{suffix}")


LAMBDA_PLATFORM = Platform(ARCHITECTURE)
PLATFORMS = LAMBDA_PLATFORM.tags


def host_platform() -> Platform:
    machine = platform.machine().lower()
    return Platform({"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64", "amd64": "x86_64"}[machine])


class AssetBuildError(RuntimeError):
    """The asset could not be built; the message says what to do."""


@dataclass(frozen=True)
class Asset:
    path: Path
    sha256: str
    size_bytes: int
    rebuilt: bool
    seconds: float


def _ignored(path: Path) -> bool:
    return any(part in _IGNORED_NAMES for part in path.parts) or path.name.endswith(_IGNORED_SUFFIXES)


def _source_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not _ignored(p.relative_to(root)))


def _recipe(target: Platform) -> bytes:
    """Everything about how the wheels are chosen: changing any of it means reinstalling."""
    recipe = {
        "python": PYTHON_VERSION,
        "platforms": target.tags,
        "builder": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
    }
    return json.dumps(recipe, sort_keys=True).encode()


def requirements_hash(target: Platform = LAMBDA_PLATFORM) -> str:
    digest = hashlib.sha256(_recipe(target))
    digest.update(REQUIREMENTS.read_bytes())
    return digest.hexdigest()


def asset_hash(target: Platform = LAMBDA_PLATFORM) -> str:
    """The hash of everything in the asset: recipe, requirements and every source file."""
    digest = hashlib.sha256(requirements_hash(target).encode())
    for path in _source_files(SOURCE_DIR):
        digest.update(b"\0" + path.relative_to(SOURCE_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(build_dir: Path) -> Iterator[None]:
    """One builder at a time (make, pytest and the CDK CLI may run together)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with (build_dir / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pip_install(target: Path, report: Path, wheels: Platform) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",  # compiled afterwards, reproducibly (_compile)
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        *(arg for tag in wheels.tags for arg in ("--platform", tag)),
        "--target",
        str(target),
        "--report",
        str(report),
        "-r",
        str(REQUIREMENTS),
    ]
    print(
        f"img2img asset: installing {REQUIREMENTS.name} for python{PYTHON_VERSION} {wheels.architecture}",
        file=sys.stderr,
    )
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise AssetBuildError(
            f"pip could not install {REQUIREMENTS.name} as {', '.join(wheels.tags)} wheels for "
            f"Python {PYTHON_VERSION} (is PyPI reachable, and does every requirement ship such a wheel?).\n"
            f"pip said:\n{result.stderr.strip() or result.stdout.strip()}"
        )


def _compile(root: Path, task_root: str) -> None:
    """Unchecked-hash .pyc for every module under `root`, by the runtime's Python, as the
    import system finds them (__pycache__/<name>.cpython-313.pyc). The path compiled in is the
    module's on Lambda, and the hash seed is fixed (frozenset constants): reproducible bytes."""
    if sys.version_info[:2] != tuple(int(n) for n in PYTHON_VERSION.split(".")):
        raise AssetBuildError(
            f"the asset's bytecode must be compiled by Python {PYTHON_VERSION} (the Lambda runtime), "
            f"not {sys.version.split()[0]}: run the build with .venv/bin/python (make install builds it)"
        )
    command = [sys.executable, "-m", "compileall", "-q", "-q", "-j", "0", "-d", task_root]
    command += ["--invalidation-mode", "unchecked-hash", str(root)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)  # noqa: S603
    if result.returncode != 0:
        raise AssetBuildError(f"compileall failed under {root}:\n{(result.stdout + result.stderr)[-3000:]}")


def _trim_service_data(root: Path) -> None:
    """botocore's and boto3's data directories keep the services the functions call."""
    for data in (root / "botocore" / "data", root / "boto3" / "data"):
        for entry in data.iterdir():
            if entry.is_dir() and entry.name not in BOTOCORE_SERVICES:
                shutil.rmtree(entry)


def _ensure_dependencies(build_dir: Path, wheels: Platform) -> Path:
    deps_root = build_dir / "deps"
    target = deps_root / requirements_hash(wheels)[:16]
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    staging = deps_root / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    report = deps_root / f".report-{os.getpid()}.json"
    try:
        _pip_install(staging, report, wheels)
        for pattern in _PRUNED_FROM_DEPS:
            for path in staging.glob(pattern):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        _trim_service_data(staging)
        _compile(staging, LAMBDA_TASK_ROOT)
        installed = json.loads(report.read_text())["install"]
        manifest = {item["metadata"]["name"]: item["metadata"]["version"] for item in installed}
        (staging / ".complete").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        report.unlink(missing_ok=True)
    for stale in deps_root.iterdir():  # keep one set of wheels: the current one
        if stale != target and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    return target


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)  # wheels never change in place: a hard link is a free copy
    except OSError:
        shutil.copy2(src, dst)
    return dst


def _directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _verify(asset_dir: Path, target: Platform) -> None:
    missing = [module for module in target.native_modules if not (asset_dir / module).is_file()]
    if missing:
        raise AssetBuildError(
            f"the asset lacks native modules built for python{PYTHON_VERSION} {target.architecture}: "
            + ", ".join(missing)
        )
    if not (asset_dir / "img2img" / "__init__.py").is_file():
        raise AssetBuildError(f"the asset lacks the img2img package (expected it under {SOURCE_DIR})")
    size = _directory_size(asset_dir)
    if size > LAMBDA_UNZIPPED_LIMIT_BYTES:
        raise AssetBuildError(f"the asset is {size / 2**20:.0f} MiB unzipped; Lambda allows 250 MiB")


def build_asset(
    build_dir: Path = BUILD_DIR, *, force: bool = False, target: Platform = LAMBDA_PLATFORM
) -> Asset:
    """Build .build/lambda/ unless what went into it is unchanged; return where it is and its hash."""
    started = time.monotonic()
    asset_dir = build_dir / "lambda"
    stamp = build_dir / "lambda.sha256"
    with _locked(build_dir):
        wanted = asset_hash(target)
        if not force and asset_dir.is_dir() and stamp.is_file() and stamp.read_text().strip() == wanted:
            return Asset(asset_dir, wanted, _directory_size(asset_dir), False, time.monotonic() - started)
        if force:
            shutil.rmtree(build_dir / "deps", ignore_errors=True)
        deps = _ensure_dependencies(build_dir, target)
        staging = build_dir / f".lambda-staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(
            deps, staging, copy_function=_link_or_copy, ignore=shutil.ignore_patterns(".complete")
        )
        for path in _source_files(SOURCE_DIR):
            destination = staging / path.relative_to(SOURCE_DIR)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
        try:
            for package in sorted({p.relative_to(SOURCE_DIR).parts[0] for p in _source_files(SOURCE_DIR)}):
                if (staging / package).is_dir():
                    _compile(staging / package, f"{LAMBDA_TASK_ROOT}/{package}")
            _verify(staging, target)
        except AssetBuildError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        stamp.unlink(missing_ok=True)
        shutil.rmtree(asset_dir, ignore_errors=True)
        staging.rename(asset_dir)
        stamp.write_text(wanted + "\n")
        (build_dir / "lambda.manifest.json").write_text((deps / ".complete").read_text())
        return Asset(asset_dir, wanted, _directory_size(asset_dir), True, time.monotonic() - started)


def build_twin() -> Asset:
    """The asset for this machine's architecture, in .build/twin/lambda/: same requirements,
    pins, pruning and bytecode; only the wheels' platform tag differs."""
    return build_asset(TWIN_BUILD_DIR, target=host_platform())


# How the tests and `make bench` run the twin as Lambda's runtime imports the asset: a fresh
# interpreter with only the asset on its path (PYTHONPATH; -S: no site-packages, so nothing of
# .venv; -P: no script directory) that writes no bytecode (-B; /var/task is read-only).
ISOLATED_FLAGS = ("-S", "-P", "-B")


def read_only_copy(asset_dir: Path, destination: Path) -> Path:
    """A copy of `asset_dir` with no write bits, as Lambda mounts /var/task. (root ignores the
    bits, hence also -B and the tests' check that nothing is compiled at import.)"""
    shutil.copytree(asset_dir, destination)
    for path in [destination, *destination.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    return destination


def make_writable(path: Path) -> None:
    """Undo read_only_copy, so the copy can be deleted."""
    for item in [path, *path.rglob("*")]:
        item.chmod(item.stat().st_mode | 0o200)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the Lambda code asset into .build/lambda/ (no Docker)."
    )
    parser.add_argument("--force", action="store_true", help="reinstall the wheels even if nothing changed")
    args = parser.parse_args(argv)
    try:
        asset = build_asset(force=args.force)
    except AssetBuildError as exc:
        print(f"img2img asset: {exc}", file=sys.stderr)
        return 1
    state = "built" if asset.rebuilt else "unchanged"
    print(
        f"img2img asset: {state} {asset.path.relative_to(ROOT)} "
        f"({asset.size_bytes / 2**20:.1f} MiB unzipped, python{PYTHON_VERSION} {ARCHITECTURE}, "
        f"sha256 {asset.sha256[:12]}, {asset.seconds:.1f}s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
