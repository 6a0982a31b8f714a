"""The shape of sft_pipeline: no import cycle, no import of the local stack, no upward import.

The graph is the one ``python -m sft_local.architecture`` prints, so the figures people read
and the rules enforced here cannot disagree.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from sft_local import architecture
from sft_local.architecture import cycles, import_graph, modules
from sft_pipeline.jobs import PROVIDER_NAMES, ProviderName
from sft_pipeline.providers import PROVIDER_MODULES
from sft_pipeline.validation.targets import TARGETS

PACKAGE = architecture.PACKAGE_DIRS["sft_pipeline"] / "sft_pipeline"
# What plays each provider in the local stack and the tests.
LOCAL_STAND_INS: dict[ProviderName, str] = {
    "openai": "sft_local.openai_emulator",
    "bedrock": "sft_local.bedrock_standin",
}
# Modules outside validation/targets that still branch on a provider's name. Keep it short:
# what a provider accepts belongs in its target module.
BRANCHING_ON_A_PROVIDER = {"validation/validator.py", "notifications.py"}

# Lower layers never import higher ones. A module not listed is held to the domain's rule
# (it may import only the domain), so a new module is as strict as it can be until placed.
LAYERS: dict[str, tuple[str, ...]] = {
    # Pure models and functions: jobs, records, aliases, keys, notifications, validation
    # (with each provider's rules in validation.targets).
    "domain": (),
    # One module per outside system (observability: CloudWatch and X-Ray), the provider
    # adapters, and the settings that name them.
    "adapters": (
        "sft_pipeline.adapters",
        "sft_pipeline.providers",
        "sft_pipeline.settings",
        "sft_pipeline.observability",
    ),
    # What composes them: the workflow's steps, the API, the composition root, the CLI.
    "application": (
        "sft_pipeline.pipeline",
        "sft_pipeline.api",
        "sft_pipeline.runtime",
        "sft_pipeline.cli",
    ),
}
ORDER = list(LAYERS)


def layer_of(module: str) -> str:
    for layer, prefixes in LAYERS.items():
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return layer
    return "domain"


def test_sft_pipeline_has_no_import_cycle() -> None:
    assert cycles(import_graph("sft_pipeline")) == []


def test_sft_pipeline_never_imports_the_local_stack() -> None:
    """The package is the Lambda layer: development tooling must not ride along."""
    found = modules("sft_pipeline", type_checking=True)
    assert {
        f"{name} -> {target}"
        for name, module in found.items()
        for target in module.imports
        if target.split(".")[0] == "sft_local"
    } == set()


def test_no_module_imports_a_higher_layer() -> None:
    """Type-only imports count too: they are a dependency all the same."""
    upward = {
        f"{source} ({layer_of(source)}) -> {target} ({layer_of(target)})"
        for source, targets in import_graph("sft_pipeline", type_checking=True).items()
        for target in targets
        if ORDER.index(layer_of(target)) > ORDER.index(layer_of(source))
    }
    assert upward == set()


def test_the_layers_name_existing_packages() -> None:
    """A renamed package must not leave a layer rule that checks nothing."""
    found = modules("sft_pipeline")
    for prefix in (prefix for prefixes in LAYERS.values() for prefix in prefixes):
        assert prefix in found, prefix


def test_cycles_finds_each_strongly_connected_group() -> None:
    graph = {
        "a": {"b"},
        "b": {"c"},
        "c": {"a", "d"},
        "d": set(),
        "e": {"f", "a"},
        "f": {"e"},
        "g": {"g"},
    }
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["e", "f"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_import_graph_counts_parent_packages_and_leaves_type_checking_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from pkg import base\n")
    (package / "base.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub import leaf\n"
    )
    (package / "sub" / "__init__.py").write_text("from . import leaf\n")
    # Importing pkg.sub.leaf runs pkg/__init__ and pkg/sub/__init__ first, never itself.
    (package / "sub" / "leaf.py").write_text("import json\nfrom ..base import *\n")
    monkeypatch.setitem(architecture.PACKAGE_DIRS, "pkg", tmp_path)

    assert import_graph("pkg") == {
        "pkg": {"pkg.base"},
        "pkg.base": set(),
        "pkg.sub": {"pkg.sub.leaf"},
        "pkg.sub.leaf": {"pkg.base"},
    }
    typed = import_graph("pkg", type_checking=True)
    assert typed["pkg.base"] == {"pkg.sub", "pkg.sub.leaf"}
    assert cycles(typed) == [["pkg.base", "pkg.sub", "pkg.sub.leaf"]]


# ---------------------------------------------------------------- where a provider lives


@pytest.mark.parametrize("name", PROVIDER_NAMES)
def test_a_provider_is_registered_in_each_of_its_places(name: ProviderName) -> None:
    """The README's recipe for a provider: one rules module, one adapter module, one line in
    each registry, one data table (and a stand-in, so the suite runs offline)."""
    target = TARGETS[name]
    assert target.__name__ == f"sft_pipeline.validation.targets.{name}"  # type: ignore[attr-defined]
    adapter = importlib.import_module(PROVIDER_MODULES[name])
    assert adapter.__name__ == f"sft_pipeline.providers.{name}_provider"
    assert callable(adapter.build)
    assert any(
        isinstance(value, type) and getattr(value, "name", None) == name
        for value in vars(adapter).values()
    ), f"{adapter.__name__} has no adapter class named {name!r}"
    table = PACKAGE / "data" / f"{name}_models.json"
    assert table.is_file()
    assert '"models"' in table.read_text()
    importlib.import_module(LOCAL_STAND_INS[name])


def test_no_place_names_a_provider_the_domain_does_not_know() -> None:
    tables = {path.name.removesuffix("_models.json") for path in PACKAGE.glob("data/*_models.json")}
    names = set(PROVIDER_NAMES)
    assert set(TARGETS) == set(PROVIDER_MODULES) == set(LOCAL_STAND_INS) == tables == names


def test_no_new_module_branches_on_a_provider_name() -> None:
    quoted = "|".join(PROVIDER_NAMES)
    branch = re.compile(rf"""(?:==|!=|\bin)\s*\(?["'](?:{quoted})["']""")
    branching = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if "targets" not in path.parts and branch.search(path.read_text())
    }
    assert branching <= BRANCHING_ON_A_PROVIDER, "ask the provider's target module instead"
