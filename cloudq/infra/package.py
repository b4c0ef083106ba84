"""``cloudq infra package``: the Lambda function's zip, built from what is installed here.

What goes in (all at the zip's root, which is the function's ``/var/task``):

- the app's own package: the top-level package of ``module:app``, without its tests;
- cloudq as installed, without the modules only the command line needs (``CLI_ONLY``);
- pydantic (the version installed here) and the ``--requirements``, installed by pip for
  Lambda's platform (manylinux, the chosen Python), wheels only;
- unchecked-hash bytecode, made by that Python when it is on ``PATH``: Lambda's file system is
  read-only, so a function cannot cache what it compiles, and the zip's timestamps do not
  matter to unchecked-hash bytecode.

Left out: tests, ``dist-info`` beyond ``METADATA`` and licences, console scripts, and
boto3/botocore/s3transfer, which the Lambda runtime has (unless ``include_boto3``). The same
inputs give the same zip (entries sorted, fixed times), so a redeploy of unchanged code changes
nothing. The serverless.yml (``package: artifact:``), the CloudFormation route (``CodeS3Key``)
and the emulator deploy this one zip.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cloudq.core.errors import ConfigurationError

#: Lambda's Pythons that the package can target, and the platform of its x86_64 functions.
PYTHON_VERSIONS = ("3.11", "3.12")
LAMBDA_PLATFORM = "manylinux2014_x86_64"
#: Lambda's limits on a .zip deployment package (the function's code, unzipped with its layers).
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
#: Distributions the Lambda Python runtime already has: left out unless asked for.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
#: Parts of cloudq (paths under ``cloudq/``) that only the command line and rendering use: the
#: handler's imports never reach them (the isolated-import e2e test checks it).
CLI_ONLY = (
    "__main__.py",
    "cli",
    "ops/status_view.py",
    "infra/cloudformation.py",
    "infra/dashboard.py",
    "infra/ecs.py",
    "infra/iam.py",
    "infra/intrinsics.py",
    "infra/model.py",
    "infra/package.py",
    "infra/render.py",
    "infra/serverless.py",
)
SKIPPED_FOLDERS = {"__pycache__", ".pytest_cache", ".mypy_cache", "tests", "test"}
#: Of a ``.dist-info`` folder, what is kept: the version (``importlib.metadata``) and licences.
KEPT_METADATA = ("METADATA", "LICENSE", "licenses", "COPYING", "NOTICE")
#: Fixed zip entry times: the same code makes the same zip.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
#: Where the function's code lives on Lambda: what tracebacks of the bytecode name.
LAMBDA_TASK_ROOT = "/var/task"
MB = 1024 * 1024


def default_artifact(app_name: str) -> str:
    """Where ``cloudq infra package`` writes the zip, relative to the project folder; the
    rendered serverless.yml deploys this path."""
    return f"dist/{app_name}-lambda.zip"


@dataclass
class PackageReport:
    path: Path
    zipped_bytes: int
    unzipped_bytes: int
    #: (top-level entry, compressed bytes), largest first
    parts: list[tuple[str, int]]
    #: What the build could not do (no bytecode without the target Python, for one).
    notes: list[str] = field(default_factory=list)

    def summary(self, largest: int = 5) -> str:
        lines = [
            f"{self.path}: {self.zipped_bytes / MB:.2f} MB zipped, {self.unzipped_bytes / MB:.2f} MB unzipped"
        ]
        lines += [f"  {size / MB:6.2f} MB  {name}" for name, size in self.parts[:largest]]
        return "\n".join(lines + [f"note: {note}" for note in self.notes])


def build_package(
    app_reference: str,
    output: str | Path,
    *,
    python: str = PYTHON_VERSIONS[0],
    platform: str | None = LAMBDA_PLATFORM,
    requirements: str | Path | None = None,
    include_boto3: bool = False,
) -> PackageReport:
    """Build the function's zip at ``output``. ``platform=None`` installs the dependencies for
    this machine (the emulator, where it is not Lambda's platform). Raises
    ``ConfigurationError`` when the code cannot be found, pip fails, or the zip is over
    Lambda's limits."""
    if platform is not None and python not in PYTHON_VERSIONS:
        raise ConfigurationError(f"--python {python}: choose one of {', '.join(PYTHON_VERSIONS)}")
    with tempfile.TemporaryDirectory(prefix="cloudq-package-") as folder:
        staging = Path(folder) / "task"
        staging.mkdir()
        install_dependencies(staging, python, platform, requirements, include_boto3)
        copy_tree(_package_root(app_reference), staging)
        copy_tree(_cloudq_root(), staging, skipped=tuple(f"cloudq/{part}" for part in CLI_ONLY))
        notes = compile_bytecode(staging, python)
        report = write_zip(staging, Path(output))
    report.notes = notes
    check_limits(report)
    return report


def _cloudq_root() -> Path:
    """The installed ``cloudq`` package's folder (this module is ``cloudq/infra/package.py``)."""
    return Path(__file__).resolve().parents[1]


def source_fingerprint(app_reference: str) -> tuple[str, ...]:
    """What changes when the app's or cloudq's files do (count, newest time) and the
    dependencies' versions: equal fingerprints build equal zips."""
    found = []
    for root in (_package_root(app_reference), _cloudq_root()):
        times = (
            [path.stat().st_mtime_ns for path in root.rglob("*.py")]
            if root.is_dir()
            else [root.stat().st_mtime_ns]
        )
        found += [str(len(times)), str(max(times, default=0))]
    return (*found, importlib.metadata.version("pydantic"))


def _package_root(app_reference: str) -> Path:
    """The folder (or lone module) of the top-level package of ``module:app``."""
    top = app_reference.partition(":")[0].split(".")[0]
    spec = importlib.util.find_spec(top)
    if spec is None or (spec.origin is None and not spec.submodule_search_locations):
        raise ConfigurationError(
            f"cannot find the code of {app_reference!r} to package (is it importable here?)"
        )
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    assert spec.origin is not None
    return Path(spec.origin)


def _is_test_file(name: str) -> bool:
    return name == "conftest.py" or name.startswith("test_") or name.endswith("_test.py")


def copy_tree(root: Path, staging: Path, *, skipped: tuple[str, ...] = ()) -> None:
    """Copy a package folder (or a lone module) into ``staging``, without tests and caches."""
    if root.is_file():
        shutil.copy2(root, staging / root.name)
        return
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root.parent)
        inner = relative.parts[1:-1]
        if not path.is_file() or SKIPPED_FOLDERS & set(inner) or path.suffix == ".pyc":
            continue
        if _is_test_file(path.name) or relative.as_posix().startswith(skipped):
            continue
        target = staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def pip_command(target: Path, python: str, platform: str | None) -> list[str]:
    """pip installing wheels for Lambda's platform (or this machine's) into ``target``. pip's
    own settings apply: ``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, ``PIP_NO_INDEX`` (offline)."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["--target", str(target), "--no-compile", "--upgrade"]
    if platform is not None:
        command += ["--only-binary=:all:", "--platform", platform, "--python-version", python]
        command += ["--implementation", "cp"]
    return command


def install_dependencies(
    staging: Path, python: str, platform: str | None, requirements: str | Path | None, include_boto3: bool
) -> None:
    """pydantic (this machine's version, which cloudq was tested with) and the requirements."""
    wanted = [f"pydantic=={importlib.metadata.version('pydantic')}"]
    if requirements is not None:
        if not Path(requirements).is_file():
            raise ConfigurationError(f"--requirements {requirements}: no such file")
        wanted += ["-r", str(requirements)]
    if include_boto3:
        wanted += [f"boto3=={importlib.metadata.version('boto3')}"]
    done = subprocess.run(pip_command(staging, python, platform) + wanted, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ConfigurationError(f"pip could not install the function's dependencies: {last}")
    if not include_boto3:
        for name in RUNTIME_PROVIDED:
            _remove_distribution(staging, name)
    _tidy_metadata(staging)


def _remove_distribution(staging: Path, name: str) -> None:
    for info in staging.glob(f"{name}-*.dist-info"):
        shutil.rmtree(info)
        shutil.rmtree(staging / name, ignore_errors=True)


def _tidy_metadata(staging: Path) -> None:
    shutil.rmtree(staging / "bin", ignore_errors=True)
    for info in staging.glob("*.dist-info"):
        for path in info.iterdir():
            if not path.name.startswith(KEPT_METADATA):
                path.unlink() if path.is_file() else shutil.rmtree(path)


def compile_bytecode(staging: Path, python: str) -> list[str]:
    """Unchecked-hash bytecode by ``python`` (this interpreter when it is that version, else
    ``python3.X`` on ``PATH``); a note instead when there is none."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    interpreter = sys.executable if here == python else shutil.which(f"python{python}")
    if interpreter is None:
        return [f"no python{python} on PATH: no bytecode, so each cold start compiles the code"]
    command = [
        interpreter,
        "-m",
        "compileall",
        "-q",
        "-f",
        "-j",
        "0",
        "--invalidation-mode",
        "unchecked-hash",
    ]
    command += ["-s", str(staging), "-p", LAMBDA_TASK_ROOT, str(staging)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigurationError(
            f"compiling the package failed: {(done.stdout + done.stderr).strip()[-500:]}"
        )
    return []


def _files(staging: Path) -> Iterator[Path]:
    return (path for path in sorted(staging.rglob("*")) if path.is_file())


def write_zip(staging: Path, output: Path) -> PackageReport:
    output.parent.mkdir(parents=True, exist_ok=True)
    unzipped = 0
    parts: dict[str, int] = {}
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in _files(staging):
            name = path.relative_to(staging).as_posix()
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
        for entry in archive.infolist():
            unzipped += entry.file_size
            top = entry.filename.split("/")[0]
            if top == "__pycache__":  # a lone module's bytecode counts with the module
                top = entry.filename.split("/")[1]
            top = top.split("-")[0].split(".")[0]
            parts[top] = parts.get(top, 0) + entry.compress_size
    largest = sorted(parts.items(), key=lambda item: (-item[1], item[0]))
    return PackageReport(output, output.stat().st_size, unzipped, largest)


def check_limits(report: PackageReport) -> None:
    """Lambda refuses a zip over 50 MB, or over 250 MB unzipped: say so now, with the fix."""
    fix = "leave out what the function does not import (--requirements), or deploy a container image"
    if report.zipped_bytes > MAX_ZIPPED_BYTES:
        raise ConfigurationError(
            f"{report.path} is {report.zipped_bytes / MB:.1f} MB zipped, over Lambda's "
            f"{MAX_ZIPPED_BYTES // MB} MB limit: {fix}"
        )
    if report.unzipped_bytes > MAX_UNZIPPED_BYTES:
        raise ConfigurationError(
            f"{report.path} is {report.unzipped_bytes / MB:.1f} MB unzipped, over Lambda's "
            f"{MAX_UNZIPPED_BYTES // MB} MB limit: {fix}"
        )
