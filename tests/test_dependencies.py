"""The dependency floors admit no release with a published advisory we know of.

Each row: a package, the CVE, and the last release it affects (on that line). The
floors in pyproject.toml must exclude that release, and the environment the tests
run in must satisfy the floors. Add a row when an advisory is published.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

#: (package, advisory, a vulnerable release that must not be admitted)
ADVISORIES = [
    ("requests", "CVE-2024-35195", "2.31.0"),
    ("requests", "CVE-2024-47081", "2.32.3"),
    ("requests", "CVE-2026-25645", "2.32.5"),
    ("urllib3", "CVE-2025-50181/50182", "2.4.0"),
    ("urllib3", "CVE-2025-66418/66471", "2.5.0"),
    ("urllib3", "CVE-2026-21441", "2.6.2"),
    ("urllib3", "CVE-2026-44431/44432", "2.6.3"),
    ("urllib3", "CVE-2026-97687/97689", "2.7.0"),
    ("cryptography", "CVE-2024-26130", "42.0.3"),
    ("cryptography", "CVE-2024-12797", "44.0.0"),
    ("cryptography", "CVE-2026-26007", "46.0.4"),
    ("cryptography", "CVE-2026-34073", "46.0.5"),
    ("cryptography", "CVE-2026-39892", "46.0.6"),
    ("cryptography", "CVE-2026-69247", "49.0.0"),
    ("djangorestframework", "CVE-2024-21520", "3.15.1"),
    ("djangorestframework", "CVE-2026-73228/73229", "3.17.1"),
    ("djangorestframework", "CVE-2026-114136/114137", "3.18.1"),
    ("Django", "CVE-2025-64459", "5.2.7"),
    ("Django", "CVE-2026-1287/1312", "5.2.10"),
    ("Django", "CVE-2026-15307/15920", "5.2.16"),
    ("Django", "CVE-2026-77050/84429", "5.2.17"),
    ("Django", "CVE-2026-111362/114582", "5.2.18"),
    ("Django", "CVE-2026-111362/114582", "6.0.9"),
    ("Django", "CVE-2026-111362/114582", "6.1.2"),
]


def requirements() -> dict[str, Requirement]:
    data = tomllib.loads(PYPROJECT.read_text())
    found = [Requirement(line) for line in data["project"]["dependencies"]]
    return {requirement.name.lower(): requirement for requirement in found}


@pytest.mark.parametrize(("package", "advisory", "vulnerable"), ADVISORIES)
def test_the_floor_excludes_releases_with_advisories(package, advisory, vulnerable):
    requirement = requirements()[package.lower()]
    assert not requirement.specifier.contains(vulnerable, prereleases=True), (
        f"{requirement} admits {package} {vulnerable} ({advisory})"
    )


def test_fixed_releases_are_still_admitted():
    admitted = {
        "Django": ["5.2.19", "6.0.10", "6.1.3"],
        "djangorestframework": ["3.18.2"],
        "requests": ["2.33.0"],
        "urllib3": ["2.8.0"],
        "cryptography": ["50.0.0"],
    }
    for package, releases in admitted.items():
        requirement = requirements()[package.lower()]
        for release in releases:
            assert requirement.specifier.contains(release), f"{requirement} refuses {release}"


def test_the_installed_versions_meet_the_floors():
    for name, requirement in requirements().items():
        assert requirement.specifier.contains(version(name), prereleases=True), (
            f"{name} {version(name)} installed; {requirement} required"
        )
