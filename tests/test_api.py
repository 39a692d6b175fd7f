"""The package's public API (``temporal_shift/__init__.py``): every name in ``__all__``
resolves to the object of its defining module, loaded on first use, so importing the
package or the CLI stays cheap; no exported name hides a submodule."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
from pathlib import Path

import pytest

import temporal_shift

PACKAGE = Path(temporal_shift.__file__).parent


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_importing_the_package_or_the_cli_loads_no_torch():
    out = _run(
        "import sys, temporal_shift, temporal_shift.cli\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'av', 'numpy') if m in sys.modules))"
    )
    assert out.strip() == "[]"


def test_every_exported_name_is_its_modules_object():
    exports = temporal_shift._EXPORTS
    assert sorted(temporal_shift.__all__) == sorted([*exports, *temporal_shift._SUBMODULES])
    for name, module in exports.items():
        assert getattr(temporal_shift, name) is getattr(importlib.import_module(module), name), name
    for name, module in temporal_shift._SUBMODULES.items():
        value = getattr(temporal_shift, name)
        assert isinstance(value, types.ModuleType) and value.__name__ == module == f"temporal_shift.engine.{name}"
    assert set(temporal_shift.__all__) <= set(dir(temporal_shift))


def test_star_import_in_a_fresh_process_has_no_cycles():
    # every name, first touched in a fresh interpreter in __all__'s order and alone
    code = (
        "from temporal_shift import *\nimport temporal_shift\n"
        "print(len([n for n in temporal_shift.__all__ if n in globals()]))"
    )
    assert int(_run(code)) == len(temporal_shift.__all__)
    for name in ("load_checkpoint", "OnlineStream"):
        _run(f"from temporal_shift import {name}")


def test_no_exported_name_hides_a_submodule():
    submodules = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()
    }
    for name in temporal_shift.__all__:
        if name in submodules:
            assert name in temporal_shift._SUBMODULES, f"temporal_shift.{name} would hide the module {name}.py"


def test_no_name_the_models_package_exports_is_also_one_of_its_modules():
    import temporal_shift.models as models

    folder = PACKAGE / "models"
    submodules = {p.stem for p in folder.glob("*.py")} | {
        p.name for p in folder.iterdir() if (p / "__init__.py").is_file()
    }
    assert not set(models.__all__) & submodules  # importing the module would replace the lazy name


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="module 'temporal_shift' has no attribute 'load_any_checkpoint'"):
        temporal_shift.load_any_checkpoint  # noqa: B018
    with pytest.raises(ImportError):
        exec("from temporal_shift import nothing_here", {})


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ("temporal_shift.shift", "temporal_shift.ops.shift", ("temporal_shift", "TemporalShift")),
        ("temporal_shift.importers", "temporal_shift.checkpoint.importers", ("import_checkpoint", "detect_format")),
        ("temporal_shift.weights", "temporal_shift.hub.weights", ("get_weights", "download_weights", "registry")),
        ("temporal_shift.models", "temporal_shift.models.factory", ("build_model",)),
    ],
)
def test_old_module_paths_still_import_for_one_release(old, new, names):
    code = (
        "import importlib, warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    old = importlib.import_module({old!r})\n"
        f"new = importlib.import_module({new!r})\n"
        f"print(all(getattr(old, n) is getattr(new, n) for n in {names!r}))\n"
        "print(any(issubclass(w.category, DeprecationWarning) and 'moved to' in str(w.message) for w in caught))\n"
    )
    same, warned = _run(code).split()
    assert same == "True"
    assert warned == ("False" if old == "temporal_shift.models" else "True")  # models is the new package itself
