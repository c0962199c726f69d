"""A regular (non-editable) build holds the whole package under the import name ``sioctl``.

The subpackages live in top-level folders (cluster/, worker/, cli/) mapped by pyproject.toml;
an editable install hides a broken mapping, so this builds a real wheel and looks inside.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import sioctl
from tests.support.paths import REPO_ROOT


def test_wheel_contains_every_subpackage_and_the_command(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
         str(REPO_ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("sioctl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("cluster", "worker", "cli"):
        # Subpackages (worker/framework, worker/gateway) must be listed in pyproject.toml.
        sources = sorted(p.relative_to(REPO_ROOT / folder).as_posix()
                         for p in (REPO_ROOT / folder).rglob("*.py"))
        assert sources, folder
        for name in sources:
            assert f"sioctl/{folder}/{name}" in names, f"{folder}/{name} missing from {wheel.name}"
    assert "sioctl/__init__.py" in names
    # Nothing outside the package (tests, examples, docs) is installed.
    assert all(n.startswith(("sioctl/", "sioctl-")) for n in names), sorted(names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "sioctl = sioctl.cli.main:main" in text
    # One version (sioctl.__version__, which `sioctl --version` prints) and the MIT licence
    # travel in the wheel's metadata.
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    meta_text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert f"\nVersion: {sioctl.__version__}\n" in meta_text
    assert any(n.endswith("LICENSE") for n in names), sorted(names)


def test_license_is_mit_and_the_changelog_has_the_current_version() -> None:
    license_text = (REPO_ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License") and "the sioctl authors" in license_text
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert 'license = { text = "MIT" }' in pyproject
    headings = re.findall(r"^## \[([^\]]+)\]", (REPO_ROOT / "CHANGELOG.md").read_text(), re.M)
    # Keep a Changelog: Unreleased first, then the released versions, the current one among them.
    assert headings[0] == "Unreleased" and sioctl.__version__ in headings


def test_the_installed_command_prints_the_version() -> None:
    command = Path(sys.executable).with_name("sioctl")
    result = subprocess.run([str(command), "--version"], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == f"sioctl, version {sioctl.__version__}"
