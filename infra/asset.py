"""Builds the one Lambda code asset both functions share, without Docker.

The asset is the contents of `functions/` (package `img2img`) plus the runtime requirements of
`requirements.txt`, installed as Linux wheels for Lambda's architecture and Python version:

    pip install --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64
                --only-binary=:all: --python-version 3.13 --implementation cp --target ...

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
_PIP_ARCH = {"arm64": "aarch64", "x86_64": "x86_64"}[ARCHITECTURE]
PLATFORMS = (f"manylinux_2_28_{_PIP_ARCH}", f"manylinux2014_{_PIP_ARCH}")
_ABI = "cp" + PYTHON_VERSION.replace(".", "")
# Native modules that must be present, built for the target (proves the wheels are Lambda's).
NATIVE_MODULES = (
    f"PIL/_imaging.cpython-{_ABI.removeprefix('cp')}-{_PIP_ARCH}-linux-gnu.so",
    f"pydantic_core/_pydantic_core.cpython-{_ABI.removeprefix('cp')}-{_PIP_ARCH}-linux-gnu.so",
)
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024

_IGNORED_NAMES = {"__pycache__", ".DS_Store", ".pytest_cache", ".mypy_cache"}
_IGNORED_SUFFIXES = (".pyc", ".pyo")
# Installed but never imported on Lambda: console scripts and compiled bytecode of this host.
_PRUNED_FROM_DEPS = ("bin",)


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


def _recipe() -> bytes:
    """Everything about how the wheels are chosen: changing any of it means reinstalling."""
    recipe = {
        "python": PYTHON_VERSION,
        "platforms": PLATFORMS,
        "builder": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
    }
    return json.dumps(recipe, sort_keys=True).encode()


def requirements_hash() -> str:
    digest = hashlib.sha256(_recipe())
    digest.update(REQUIREMENTS.read_bytes())
    return digest.hexdigest()


def asset_hash() -> str:
    """The hash of everything in the asset: recipe, requirements and every source file."""
    digest = hashlib.sha256(requirements_hash().encode())
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


def _pip_install(target: Path, report: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",  # this host's bytecode is no use to another Python version
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
        "--target",
        str(target),
        "--report",
        str(report),
        "-r",
        str(REQUIREMENTS),
    ]
    print(
        f"img2img asset: installing {REQUIREMENTS.name} for python{PYTHON_VERSION} {ARCHITECTURE}",
        file=sys.stderr,
    )
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise AssetBuildError(
            f"pip could not install {REQUIREMENTS.name} as {', '.join(PLATFORMS)} wheels for "
            f"Python {PYTHON_VERSION} (is PyPI reachable, and does every requirement ship such a wheel?).\n"
            f"pip said:\n{result.stderr.strip() or result.stdout.strip()}"
        )


def _ensure_dependencies(build_dir: Path) -> Path:
    deps_root = build_dir / "deps"
    target = deps_root / requirements_hash()[:16]
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    staging = deps_root / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    report = deps_root / f".report-{os.getpid()}.json"
    try:
        _pip_install(staging, report)
        for name in _PRUNED_FROM_DEPS:
            shutil.rmtree(staging / name, ignore_errors=True)
        for cache in list(staging.rglob("__pycache__")):
            shutil.rmtree(cache, ignore_errors=True)
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


def _verify(asset_dir: Path) -> None:
    missing = [module for module in NATIVE_MODULES if not (asset_dir / module).is_file()]
    if missing:
        raise AssetBuildError(
            f"the asset lacks native modules built for python{PYTHON_VERSION} {ARCHITECTURE}: "
            + ", ".join(missing)
        )
    if not (asset_dir / "img2img" / "__init__.py").is_file():
        raise AssetBuildError(f"the asset lacks the img2img package (expected it under {SOURCE_DIR})")
    size = _directory_size(asset_dir)
    if size > LAMBDA_UNZIPPED_LIMIT_BYTES:
        raise AssetBuildError(f"the asset is {size / 2**20:.0f} MiB unzipped; Lambda allows 250 MiB")


def build_asset(build_dir: Path = BUILD_DIR, *, force: bool = False) -> Asset:
    """Build .build/lambda/ unless what went into it is unchanged; return where it is and its hash."""
    started = time.monotonic()
    asset_dir = build_dir / "lambda"
    stamp = build_dir / "lambda.sha256"
    with _locked(build_dir):
        wanted = asset_hash()
        if not force and asset_dir.is_dir() and stamp.is_file() and stamp.read_text().strip() == wanted:
            return Asset(asset_dir, wanted, _directory_size(asset_dir), False, time.monotonic() - started)
        if force:
            shutil.rmtree(build_dir / "deps", ignore_errors=True)
        deps = _ensure_dependencies(build_dir)
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
            _verify(staging)
        except AssetBuildError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        stamp.unlink(missing_ok=True)
        shutil.rmtree(asset_dir, ignore_errors=True)
        staging.rename(asset_dir)
        stamp.write_text(wanted + "\n")
        (build_dir / "lambda.manifest.json").write_text((deps / ".complete").read_text())
        return Asset(asset_dir, wanted, _directory_size(asset_dir), True, time.monotonic() - started)


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
