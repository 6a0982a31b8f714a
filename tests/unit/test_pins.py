"""Every dependency is pinned, and a package pinned in several places has one version."""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?(?P<spec>.*)$")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements() -> list[tuple[str, str, str]]:
    """(where, package, version specifier) for every requirement the project declares."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [("pyproject.toml", line) for line in project["dependencies"]]
    for extra, lines in project["optional-dependencies"].items():
        declared += [(f"pyproject.toml[{extra}]", line) for line in lines]
    for path in sorted(
        [ROOT / "shared/requirements.txt", *ROOT.glob("functions/*/requirements.txt")]
    ):
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if line:
                declared.append((str(path.relative_to(ROOT)), line))
    parsed = []
    for where, line in declared:
        match = REQUIREMENT.match(line.strip())
        assert match, f"{where}: cannot read requirement {line!r}"
        parsed.append((where, _normalise(match["name"]), match["spec"].strip()))
    return parsed


def test_every_requirement_is_pinned_to_one_version() -> None:
    loose = [
        f"{where}: {name}{spec}"
        for where, name, spec in _requirements()
        if not spec.startswith("==")
    ]
    assert not loose, "unpinned requirements:\n" + "\n".join(loose)


def test_a_package_has_the_same_version_everywhere() -> None:
    versions: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for where, name, spec in _requirements():
        versions[name][spec].append(where)
    disagreements = {name: dict(specs) for name, specs in versions.items() if len(specs) > 1}
    assert not disagreements, f"one package, several versions: {disagreements}"


def test_the_lambda_bundles_declare_what_they_import() -> None:
    # The layer and the functions carry the runtime dependencies pyproject.toml lists (boto3 aside,
    # which the Lambda runtime provides), so a pin changed in one place is changed in the bundle too.
    runtime = {name for where, name, _ in _requirements() if where == "pyproject.toml"}
    bundled = {name for where, name, _ in _requirements() if where.endswith("requirements.txt")}
    assert runtime - {"boto3"} <= bundled
