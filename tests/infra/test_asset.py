"""The Lambda code asset, built without Docker: Linux arm64 wheels for the runtime's Python,
the function package, nothing else; rebuilt only when what goes into it changes."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from infra import asset as builder
from infra.asset import Asset, build_asset
from tests.infra.conftest import Synth

pytestmark = pytest.mark.infra


def test_asset_holds_the_package_and_linux_arm64_wheels(code_asset: Asset) -> None:
    root = code_asset.path
    for handler in ("api", "worker"):
        assert (root / "img2img" / "handlers" / f"{handler}.py").is_file()
    assert (root / "img2img" / "domain" / "imaging" / "__init__.py").is_file()  # subpackages too
    # Pillow and pydantic-core compiled for Lambda (CPython 3.13 on aarch64 Linux), not this host.
    assert (root / "PIL" / "_imaging.cpython-313-aarch64-linux-gnu.so").is_file()
    assert (root / "pydantic_core" / "_pydantic_core.cpython-313-aarch64-linux-gnu.so").is_file()
    assert not list(root.rglob("*x86_64*.so")) and not list(root.rglob("*cpython-311*.so"))
    # The ELF header says aarch64 (e_machine 0xB7).
    header = (root / "PIL" / "_imaging.cpython-313-aarch64-linux-gnu.so").read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 0xB7


def test_boto3_is_bundled_at_the_pinned_version(code_asset: Asset) -> None:
    pins = dict(
        line.split("==")
        for line in builder.REQUIREMENTS.read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    for package in ("boto3", "botocore"):
        assert (code_asset.path / package / "__init__.py").is_file()
        assert (code_asset.path / f"{package}-{pins[package]}.dist-info").is_dir()


def test_every_module_ships_unchecked_hash_bytecode_of_the_runtime(code_asset: Asset) -> None:
    """Lambda's /var/task is read-only: a module without its .pyc is compiled on every cold start."""
    root = code_asset.path
    sources = list(root.rglob("*.py"))
    assert len(sources) > 500
    for source in sources:  # where the import system looks: __pycache__/<name>.cpython-313.pyc
        cached = Path(importlib.util.cache_from_source(str(source)))
        assert cached.name.endswith(".cpython-313.pyc") and cached.is_file(), source
    for cached in root.rglob("*.pyc"):
        header = cached.read_bytes()[:8]
        # This interpreter's magic (the runtime's Python: 3.13), and PEP 552 flags 0b01: hash-based,
        # source not checked, so the bytes do not depend on file times.
        assert header[:4] == importlib.util.MAGIC_NUMBER, cached
        assert int.from_bytes(header[4:8], "little") == 0b01, cached
        assert (
            cached.parent.name == "__pycache__"
            and (cached.parents[1] / f"{cached.name.split('.')[0]}.py").is_file()
        )
    assert not (root / "bin").exists()


def test_bytecode_is_reproducible(code_asset: Asset, tmp_path: Path) -> None:
    """Compiled again elsewhere, in another process (another hash seed, path and time), the
    package's bytecode is byte for byte what the asset holds."""
    for copy in ("a", "b/deeper"):
        shutil.copytree(
            builder.SOURCE_DIR / "img2img",
            tmp_path / copy / "img2img",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        builder._compile(tmp_path / copy / "img2img", f"{builder.LAMBDA_TASK_ROOT}/img2img")
    shipped = sorted((code_asset.path / "img2img").rglob("*.pyc"))
    assert shipped
    for pyc in shipped:
        relative = pyc.relative_to(code_asset.path)
        assert (
            (tmp_path / "a" / relative).read_bytes()
            == pyc.read_bytes()
            == (tmp_path / "b/deeper" / relative).read_bytes()
        )


def test_service_data_is_trimmed_to_the_services_called(code_asset: Asset) -> None:
    data = code_asset.path / "botocore" / "data"
    assert {p.name for p in data.iterdir() if p.is_dir()} == set(builder.BOTOCORE_SERVICES)
    # What botocore loads for every client: endpoints, partitions, retries, default configuration.
    for name in ("endpoints.json", "partitions.json", "_retry.json", "sdk-default-configuration.json"):
        assert (data / name).is_file()
    assert {p.name for p in (code_asset.path / "boto3" / "data").iterdir()} <= set(builder.BOTOCORE_SERVICES)


def test_asset_fits_lambda(code_asset: Asset) -> None:
    assert 10 * 2**20 < code_asset.size_bytes < builder.LAMBDA_UNZIPPED_LIMIT_BYTES


def test_rebuild_with_nothing_changed_is_a_no_op(code_asset: Asset) -> None:
    first = build_asset()  # (sources may have moved on since the session started)
    stamp = builder.BUILD_DIR / "lambda.sha256"
    before = stamp.stat().st_mtime_ns
    started = time.monotonic()
    again = build_asset()
    assert not again.rebuilt and again.sha256 == first.sha256 == stamp.read_text().strip()
    assert time.monotonic() - started < 5
    assert stamp.stat().st_mtime_ns == before


def test_hash_follows_sources_and_requirements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = tmp_path / "functions"
    shutil.copytree(builder.SOURCE_DIR, sources, ignore=shutil.ignore_patterns("__pycache__"))
    requirements = tmp_path / "requirements.txt"
    shutil.copy(builder.REQUIREMENTS, requirements)
    monkeypatch.setattr(builder, "SOURCE_DIR", sources)
    monkeypatch.setattr(builder, "REQUIREMENTS", requirements)

    original = builder.asset_hash()
    assert builder.asset_hash() == original  # same inputs, same hash
    (sources / "img2img" / "__pycache__").mkdir(exist_ok=True)
    (sources / "img2img" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"noise")
    assert builder.asset_hash() == original  # caches are not inputs

    deps = builder.requirements_hash()
    (sources / "img2img" / "__init__.py").write_text("# changed\n", encoding="utf-8")
    assert builder.asset_hash() != original
    assert builder.requirements_hash() == deps  # a source change does not reinstall wheels

    requirements.write_text(requirements.read_text() + "\n# a comment\n")
    assert builder.requirements_hash() != deps


def test_the_template_uses_the_asset_by_its_hash(synth: Callable[..., Synth]) -> None:
    s = synth("dev")
    code_asset = s.stack.functions.code_asset
    assert code_asset.path == builder.BUILD_DIR / "lambda"
    for function in (s.stack.functions.api, s.stack.functions.worker):
        code = s.template["Resources"][s.logical_id(function)]["Properties"]["Code"]
        # CDK keys a custom-hashed asset by sha256(custom hash): no fingerprinting of 70 MB.
        assert code["S3Key"] == hashlib.sha256(code_asset.sha256.encode()).hexdigest() + ".zip"
