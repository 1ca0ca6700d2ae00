"""Every public name and parameter of yProv4ML 2.0.10 and 3.2.8 exists here, in upstream's order.

The upstream facts come from tests/compat/upstream_signatures.json, extracted from the wheels
by extract_signatures.py (names, order, kinds: data only).  Where 2.0.x and 3.2.x disagree on
a position, our signature follows 3.2.x and the 2.0.x order is recognised by type: those
calls are exercised for their effect in test_positional_layouts.py.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest

import yprov4ml_hpc as yprov4ml
from yprov4ml_hpc.utils import getters, prov_getters

DATA = json.loads((Path(__file__).parent / "upstream_signatures.json").read_text())
VERSIONS = sorted(DATA)

# 2.0.10 functions whose positional order differs from 3.2.8 (same name, other meaning):
# re-bound by type, see test_positional_layouts.py.
REBOUND_2X = {
    "start_run",
    "log_artifact",
    "save_model_version",
    "log_model",
    "log_dataset",
    "log_source_code",
}
# Parameters upstream names differently in the two versions of one position; ours takes both.
ALSO_ACCEPTED = {("log_source_code", "use_git"), ("log_source_code", "path")}


def _cases(kind: str) -> list[tuple[str, str, Any]]:
    return [(v, name, sig) for v in VERSIONS for name, sig in DATA[v][kind].items()]


def _ours(name: str) -> Any:
    return getattr(yprov4ml, name)


def _accepts(func: Any, param: str) -> bool:
    params = inspect.signature(func).parameters
    return param in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _named(func: Any) -> list[str]:
    return [
        p.name
        for p in inspect.signature(func).parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]


@pytest.mark.parametrize(("version", "name", "params"), _cases("functions"), ids=lambda x: str(x)[:40])
def test_every_upstream_function_exists_with_every_parameter(version: str, name: str, params: Any) -> None:
    ours = _ours(name)
    for param in params:
        if param["kind"] in ("var_positional", "var_keyword"):
            continue
        assert param["name"] in inspect.signature(ours).parameters, (version, name, param["name"])


@pytest.mark.parametrize(("version", "name", "params"), _cases("functions"), ids=lambda x: str(x)[:40])
def test_positional_order_is_upstreams(version: str, name: str, params: Any) -> None:
    """Upstream's positional parameters are ours, in the same order (2.0.x rebinding aside)."""
    upstream = [p["name"] for p in params if p["kind"] == "positional"]
    ours = _named(_ours(name))
    if version.startswith("2.") and name in REBOUND_2X:
        # 2.0.x's order differs from 3.2.x's here: the function re-binds it by type (its
        # effect is checked in test_positional_layouts.py and by the 2.0.x-style script).
        assert hasattr(_ours(name), "__wrapped__") or name == "log_source_code", name
        assert ours[: len(upstream)] != upstream, f"{name}: same order, remove it from REBOUND_2X"
        return
    assert ours[: len(upstream)] == upstream, (version, name, ours, upstream)


@pytest.mark.parametrize(("version", "name", "params"), _cases("functions"), ids=lambda x: str(x)[:40])
def test_required_parameters_are_no_more_than_upstreams(version: str, name: str, params: Any) -> None:
    """A call that works upstream never lacks an argument here."""
    upstream_required = {p["name"] for p in params if p["kind"] == "positional" and not p["has_default"]}
    ours = inspect.signature(_ours(name)).parameters.values()
    required = {
        p.name for p in ours if p.default is inspect.Parameter.empty and p.kind.name.startswith("POSITIONAL")
    }
    assert required <= upstream_required | {"key", "value"}, (version, name, required - upstream_required)


@pytest.mark.parametrize(
    ("version", "module", "functions"), [(v, m, f) for v in VERSIONS for m, f in DATA[v]["utils"].items()]
)
def test_utils_getters_have_upstreams_functions_and_order(version: str, module: str, functions: Any) -> None:
    ours_module = {"getters": getters, "prov_getters": prov_getters}[module]
    for name, params in functions.items():
        ours = getattr(ours_module, name)
        upstream = [p["name"] for p in params if p["kind"] == "positional"]
        assert _named(ours)[: len(upstream)] == upstream, (module, name)


@pytest.mark.parametrize(("version", "name", "info"), _cases("classes"), ids=lambda x: str(x)[:40])
def test_upstream_classes_members_and_constructors(version: str, name: str, info: Any) -> None:
    ours = _ours(name)
    for member in info["members"]:
        assert hasattr(ours, member), (name, member)
    if info["init"] is not None and name not in ("Context",):
        upstream = [p["name"] for p in info["init"] if p["kind"] == "positional"]
        assert _named(ours.__init__)[1 : len(upstream) + 1] == upstream, (version, name)
    for method in info["methods"]:
        if method in ("root_dir", "log_dir", "name", "version", "log_freq"):
            continue  # properties
        assert hasattr(ours, method), (name, method)


def test_upstream_enum_values() -> None:
    """The enums carry upstream's string values."""
    assert yprov4ml.Contexts.TRAINING.value == "TRAINING"
    assert yprov4ml.MetricsType.CSV.value == "csv" and yprov4ml.MetricsType.NETCDF.value == "netcdf"
    assert yprov4ml.CompressorType.LZ4.value == "l4" and yprov4ml.CompressorType.NONE.value is None
    assert yprov4ml.LoggingItemKind.FLOPS_PER_BATCH.value == "flops_pb"
    assert yprov4ml.FoldOperation.ADD(2, 3) == 5 and yprov4ml.FoldOperation.MIN(2, 3) == 2
    assert yprov4ml.FoldOperation.MAX(2, 3) == 3 and yprov4ml.FoldOperation.MULTIPLY(2, 3) == 6
    assert yprov4ml.FoldOperation.SUBTRACT(2, 3) == -1


def test_enums_print_as_upstreams_plain_enums() -> None:
    """Upstream's MetricsType and LoggingItemKind are plain Enums, and its notebooks build run
    names from them (``f"{MetricsType.CSV}_False"`` is the run ``MetricsType.CSV_False_0``)."""
    assert f"{yprov4ml.MetricsType.CSV}_False" == "MetricsType.CSV_False"
    assert str(yprov4ml.LoggingItemKind.METRIC) == "LoggingItemKind.METRIC"
    assert f"{yprov4ml.MetricsType.ZARR:>18}" == "  MetricsType.ZARR"
    assert yprov4ml.MetricsType.CSV == "csv"  # and they still compare equal to their values


def test_current_examples_names_exist() -> None:
    """Names used by the current upstream examples/docs beyond the two wheels."""
    for name in (
        "log_carbon_metrics",
        "register_final_metric",
        "FoldOperation",
        "Contexts",
        "log_input",
        "log_output",
        "create_context",
        "log_context",
        "ProvenanceTrackedModel",
        "WeightDistributionTrackedModel",
        "getters",
        "list_activities",
        "list_entities",
        "get_parameter",
        "list_parameters",
        "list_metrics",
        "list_metric_paths",
        "get_metric",
        "list_runs_in_proj",
        "list_provjson_in_proj",
    ):
        assert hasattr(yprov4ml, name), name


def test_end_run_signature_is_upstreams_then_keyword_only() -> None:
    params = inspect.signature(yprov4ml.end_run).parameters
    positional = [n for n, p in params.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert positional == ["create_graph", "create_svg", "crate_ro_crate", "create_card"]
    assert params["finalize_timeout_s"].kind is inspect.Parameter.KEYWORD_ONLY


def test_start_run_signature_is_upstreams_then_keyword_only() -> None:
    params = inspect.signature(yprov4ml.start_run).parameters
    positional = [n for n, p in params.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert positional == [
        "experiment_name",
        "prov_user_namespace",
        "provenance_save_dir",
        "collect_all_processes",
        "save_after_n_logs",
        "rank",
        "metrics_file_type",
        "csv_separator",
        "use_compressor",
        "use_run_id",
    ]
    for ours in ("run_id", "comm", "buffer_size", "finalize_timeout_s", "disable_codecarbon"):
        assert params[ours].kind is inspect.Parameter.KEYWORD_ONLY, ours


def test_getter_import_is_light() -> None:
    """`from yprov4ml_hpc.utils import getters` imports no pandas until a DataFrame is built."""
    import subprocess
    import sys

    code = "import sys; from yprov4ml_hpc.utils import getters, prov_getters; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
