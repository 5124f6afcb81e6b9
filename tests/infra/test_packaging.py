"""`pip install "img2img[client]"` gives a working `img2img` command: the wheel built from
pyproject.toml declares every distribution its packages import, each under the right extra,
in ranges that admit requirements*.txt's exact pins, and holds nothing but the three runtime
packages (no bench or demo code).

The wheel is built from a copy of the sources, offline (--no-index, --no-build-isolation: the
build backend is requirements-dev.txt's setuptools)."""

from __future__ import annotations

import ast
import email
import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "img2img"
# pyproject.toml's [tool.setuptools.package-dir]: each runtime package and its folder.
PACKAGE_DIRS = {
    "img2img": ROOT / "functions" / "img2img",
    "img2img_local": ROOT / "local",
    "img2img_client": ROOT / "client",
}
# `img2img local` imports local mode only when it runs (client/cli.py's cmd_local): local mode
# is the `local` extra, so the client's own imports stop there.
CLIENT_STOPS_AT = frozenset({"img2img_local.__main__"})
BUILD_INPUTS = ("pyproject.toml", "functions", "local", "client")


@dataclass(frozen=True)
class Wheel:
    path: Path
    metadata: Message

    @property
    def requirements(self) -> list[Requirement]:
        return [Requirement(line) for line in self.metadata.get_all("Requires-Dist") or []]

    def names(self) -> list[str]:
        with zipfile.ZipFile(self.path) as archive:
            return archive.namelist()

    def installs(self, *extras: str) -> set[str]:
        """Canonical names of the distributions `pip install "img2img[extras]"` asks for
        (extras naming this project itself, like dev's img2img[client,local], expanded)."""
        wanted, todo, seen = set(), [*extras, ""], set()
        while todo:
            extra = todo.pop()
            if extra in seen:
                continue
            seen.add(extra)
            for req in self.requirements:
                if req.marker is not None and not req.marker.evaluate({"extra": extra}):
                    continue
                if req.marker is None and extra:
                    continue  # already counted with extra ""
                if canonicalize_name(req.name) == PROJECT:
                    todo.extend(req.extras)
                else:
                    wanted.add(canonicalize_name(req.name))
        return wanted


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index"]
    command += ["--no-build-isolation", "--wheel-dir", str(out), str(source)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = out.glob(f"{PROJECT}-*.whl")
    with zipfile.ZipFile(path) as archive:
        (metadata,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return Wheel(path, email.message_from_bytes(archive.read(metadata)))


# --- what the code imports ------------------------------------------------------------------------


def module_file(module: str) -> Path | None:
    top, *rest = module.split(".")
    if top not in PACKAGE_DIRS:
        return None
    path = PACKAGE_DIRS[top].joinpath(*rest)
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def modules_in(package: str) -> set[str]:
    folder = PACKAGE_DIRS[package]
    found = set()
    for file in folder.rglob("*.py"):
        parts = file.relative_to(folder).with_suffix("").parts
        found.add(
            ".".join((package, *parts[:-1])) if parts[-1] == "__init__" else ".".join((package, *parts))
        )
    return found


def imported_by(file: Path) -> set[str]:
    """Every module `file` imports, at the top or inside a function (absolute imports only:
    the project uses no relative ones)."""
    found = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module, f"{file}: a relative import"
            found.add(node.module)
            # `from package import module` imports the module too.
            found.update(
                f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}")
            )
    return found


def third_party_imports(start: Iterable[str], stop: frozenset[str] = frozenset()) -> dict[str, set[str]]:
    """Top-level third-party modules reached from the `start` modules through the project's own
    (not going into `stop`), each with the project modules that import it."""
    seen: set[str] = set()
    todo = list(start)
    outside: dict[str, set[str]] = {}
    while todo:
        module = todo.pop()
        if module in seen or module in stop:
            continue
        seen.add(module)
        file = module_file(module)
        assert file is not None, f"{module} is not a module of the project"
        for name in imported_by(file):
            top = name.partition(".")[0]
            if top in PACKAGE_DIRS:
                if module_file(name) and name not in seen:
                    todo.append(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                outside.setdefault(top, set()).add(module)
    return outside


def undeclared(imports: dict[str, set[str]], declared: set[str]) -> list[str]:
    """Each imported module no declared distribution provides (mapped by what this
    environment has installed: PIL is pillow, yaml is pyyaml...)."""
    providers = importlib.metadata.packages_distributions()
    missing = []
    for top, importers in sorted(imports.items()):
        dists = {canonicalize_name(d) for d in providers.get(top, [])}
        if not dists & declared:
            missing.append(f"{top} (from {', '.join(sorted(importers))}; distributions: {sorted(dists)})")
    return missing


# --- the tests ------------------------------------------------------------------------------------


def test_the_extras_are_declared(wheel: Wheel) -> None:
    assert set(wheel.metadata.get_all("Provides-Extra") or []) >= {"client", "local", "dev"}


def test_every_module_the_client_imports_is_declared_for_the_client(wheel: Wheel) -> None:
    imports = third_party_imports(modules_in("img2img_client"), stop=CLIENT_STOPS_AT)
    assert {"requests", "urllib3", "boto3", "botocore"} <= set(imports)  # the walk sees them
    assert undeclared(imports, wheel.installs("client")) == []


# Shipped in Lambda's managed Python runtimes, not in the asset: SnapStart's runtime hooks
# (imported under `try` by handlers/wiring.py, so the functions run without it elsewhere).
LAMBDA_RUNTIME_PROVIDES = frozenset({"snapshot_restore_py"})


def test_every_module_the_functions_import_is_a_runtime_dependency(wheel: Wheel) -> None:
    imports = third_party_imports(modules_in("img2img"))
    assert {"boto3", "pydantic", "PIL", "aws_lambda_powertools"} <= set(imports)
    provided = {top: importers for top, importers in imports.items() if top not in LAMBDA_RUNTIME_PROVIDES}
    assert undeclared(provided, wheel.installs()) == []


def test_every_module_local_mode_imports_is_declared_for_local_mode(wheel: Wheel) -> None:
    """`img2img local` needs the client and local extras together."""
    imports = third_party_imports({*modules_in("img2img_local"), *CLIENT_STOPS_AT})
    assert {"moto", "werkzeug"} <= set(imports)
    assert undeclared(imports, wheel.installs("local")) == []
    everything = third_party_imports(modules_in("img2img_client"))
    assert undeclared(everything, wheel.installs("client", "local")) == []


def test_the_command_is_the_client(wheel: Wheel) -> None:
    with zipfile.ZipFile(wheel.path) as archive:
        (entry_points,) = (n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        text = archive.read(entry_points).decode()
    assert "img2img = img2img_client.cli:main" in text


def test_the_wheel_holds_the_runtime_packages_and_nothing_else(wheel: Wheel) -> None:
    names = wheel.names()
    tops = {name.partition("/")[0] for name in names if not name.startswith(f"{PROJECT}-")}
    assert tops == set(PACKAGE_DIRS)
    packaged = {name for name in names if name.endswith(".py")}
    sources = {
        f"{package}/{file.relative_to(folder).as_posix()}"
        for package, folder in PACKAGE_DIRS.items()
        for file in folder.rglob("*.py")
    }
    assert packaged == sources  # every module of each package, each subpackage listed in pyproject
    assert not [n for n in names if "bench" in n or "demo" in n]  # tools/, not packaged
    for page in ("index.html", "app.js", "app.css"):
        assert f"img2img/handlers/web/{page}" in names, names


def requirement_lines(path: Path) -> list[Requirement]:
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.partition("#")[0].strip()
        if line and not line.startswith("-"):
            lines.append(Requirement(line))
    return lines


def test_the_ranges_admit_the_pins_and_the_pins_cover_the_ranges(wheel: Wheel) -> None:
    """requirements*.txt keep exact pins (what `make install` and the Lambda asset install);
    pyproject.toml's ranges must admit them, and each side names the same distributions."""
    runtime_pins = {canonicalize_name(r.name): r for r in requirement_lines(ROOT / "requirements.txt")}
    dev_pins = {
        canonicalize_name(r.name): r
        for name in ("requirements-local.txt", "requirements-dev.txt")
        for r in requirement_lines(ROOT / name)
    }
    pins = runtime_pins | dev_pins
    declared = {
        canonicalize_name(r.name): r for r in wheel.requirements if canonicalize_name(r.name) != PROJECT
    }
    base = {canonicalize_name(r.name) for r in wheel.requirements if r.marker is None}
    assert base == set(runtime_pins), "dependencies must be exactly requirements.txt's distributions"
    assert set(declared) == set(pins)
    for name, ranged in declared.items():
        (pin,) = pins[name].specifier
        assert pin.operator == "==", f"{name}: requirements*.txt pins exactly"
        assert ranged.specifier.contains(pin.version), f"{name}: {ranged.specifier} excludes {pin.version}"
        assert ranged.extras == pins[name].extras, f"{name}: extras differ"
