"""data.flow: one module per concern, every name importable from the package as before."""

from __future__ import annotations

import importlib

from temporal_shift.data import flow

SUBMODULES = ("layout", "compute", "dataset", "transforms")


def test_package_names_are_the_submodules_objects():
    owners = {name: importlib.import_module(f"temporal_shift.data.flow.{name}") for name in SUBMODULES}
    for name in flow.__all__:
        value = getattr(flow, name)
        homes = [m for m, module in owners.items() if getattr(module, name, None) is value]
        assert homes, f"{name} is defined in no submodule"
    for name in ("FlowDataset", "prepare_flow", "flow_folder_name", "flow_test_transform", "read_flow_folder"):
        assert name in flow.__all__  # what train, evaluate and the CLI import
    for module in owners.values():
        assert module.__doc__ and len(module.__doc__.split()) > 10, module.__name__
