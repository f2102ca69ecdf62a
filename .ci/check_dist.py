"""Check the built sdist and wheel: both must ship every file of the package.

Usage: check_dist.py SOURCE_TREE DIST_DIR

"Every file" is every file under django_cronofy_conferencing/ in the (clean) source
tree except bytecode and dotfiles: modules, migrations, templates, static files.
At least one migration must be among them. The sdist must also carry README.md,
LICENSE, CHANGELOG.md and pyproject.toml; the wheel its LICENSE, and nothing
outside the package and its .dist-info.
"""

import sys
import tarfile
import zipfile
from pathlib import Path

PACKAGE = "django_cronofy_conferencing"
SDIST_EXTRA = {"README.md", "LICENSE", "CHANGELOG.md", "pyproject.toml", "MANIFEST.in"}


def expected_files(src: Path) -> set[str]:
    files = set()
    for path in (src / PACKAGE).rglob("*"):
        rel = path.relative_to(src)
        if path.is_dir() or "__pycache__" in rel.parts or path.suffix in {".pyc", ".pyo"}:
            continue
        if any(part.startswith(".") for part in rel.parts):
            continue
        files.add(rel.as_posix())
    return files


def only(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    if len(found) != 1:
        sys.exit(f"expected exactly one {pattern} in {dist}, found {[p.name for p in found]}")
    return found[0]


def main() -> int:
    src, dist = Path(sys.argv[1]), Path(sys.argv[2])
    expected = expected_files(src)
    migrations = sorted(f for f in expected if f.startswith(f"{PACKAGE}/migrations/0"))
    templates = sorted(f for f in expected if f.startswith(f"{PACKAGE}/templates/"))
    static = sorted(f for f in expected if f.startswith(f"{PACKAGE}/static/"))
    problems = []
    if not migrations:
        problems.append(f"the source tree has no migration under {PACKAGE}/migrations/")

    wheel = only(dist, "*.whl")
    with zipfile.ZipFile(wheel) as zf:
        wheel_names = set(zf.namelist())
    dist_info = {n.split("/")[0] for n in wheel_names if n.split("/")[0].endswith(".dist-info")}
    for missing in sorted(expected - wheel_names):
        problems.append(f"wheel lacks {missing}")
    strays = sorted(n for n in wheel_names if n.split("/")[0] not in {PACKAGE, *dist_info})
    problems += [f"wheel ships a file outside the package: {n}" for n in strays]
    if not any(n.endswith("/licenses/LICENSE") for n in wheel_names):
        problems.append("wheel lacks its .dist-info/licenses/LICENSE")
    if not wheel.name.endswith("-py3-none-any.whl"):
        problems.append(f"wheel is not pure Python: {wheel.name}")

    sdist = only(dist, "*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = [m.name for m in tf.getmembers() if m.isfile()]
    top = names[0].split("/")[0]
    sdist_names = {n.split("/", 1)[1] for n in names if "/" in n}
    for missing in sorted((expected | SDIST_EXTRA) - sdist_names):
        problems.append(f"sdist lacks {missing}")

    print(f"wheel  {wheel.name}: {len(wheel_names)} files")
    print(f"sdist  {sdist.name}: {len(sdist_names)} files under {top}/")
    print(f"package files expected in both: {len(expected)}")
    print(f"  migrations ({len(migrations)}): {', '.join(Path(m).name for m in migrations)}")
    print(f"  templates: {len(templates)}   static files: {len(static)}")
    if problems:
        print("\n".join(f"PROBLEM: {p}" for p in problems))
        return 1
    print("sdist and wheel ship every package file (migrations, templates, static)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
