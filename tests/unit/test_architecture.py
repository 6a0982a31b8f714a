"""The shape of sft_pipeline: no import cycle, no import of the local stack, no upward import.

The graph is the one ``python -m sft_local.architecture`` prints, so the figures people read
and the rules enforced here cannot disagree.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sft_local import architecture
from sft_local.architecture import cycles, import_graph, modules

# Lower layers never import higher ones. A module not listed is held to the domain's rule
# (it may import only the domain), so a new module is as strict as it can be until placed.
LAYERS: dict[str, tuple[str, ...]] = {
    # Pure models and functions: jobs, records, aliases, keys, notifications, validation
    # (with each provider's rules in validation.targets).
    "domain": (),
    # One module per outside system, the provider adapters, and the settings that name them.
    "adapters": ("sft_pipeline.adapters", "sft_pipeline.providers", "sft_pipeline.settings"),
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
