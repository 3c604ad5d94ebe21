"""The layer rules of STYLE.md, enforced: `pytest` fails when an import breaks one.

The contracts live in pyproject.toml (`[tool.importlinter]`) so `lint-imports` in
.ci/quality-gates and this test check the very same rules. This test also pins the rules
themselves, so weakening a contract in pyproject.toml is a visible change here too.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"

# contract id -> (source packages, modules they must never import)
REQUIRED_RULES: dict[str, tuple[set[str], set[str]]] = {
    "services-no-web": ({"services"}, {"api", "sanic"}),
    "integrations-standalone": ({"integrations"}, {"services", "api", "sanic"}),
    "leaves-no-api": ({"certificates", "notifications"}, {"api"}),
    "config-is-a-leaf": ({"config"}, {"api", "services", "integrations", "certificates", "notifications"}),
}


def _contracts() -> dict[str, dict]:
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def test_the_layer_rules_are_all_declared():
    contracts = _contracts()
    for contract_id, (sources, forbidden) in REQUIRED_RULES.items():
        assert contract_id in contracts, f"contract {contract_id!r} is missing from pyproject.toml"
        contract = contracts[contract_id]
        assert contract["type"] == "forbidden"
        assert set(contract["source_modules"]) == sources
        missing = forbidden - set(contract["forbidden_modules"])
        assert not missing, f"{contract_id} no longer forbids {sorted(missing)}"


@pytest.mark.parametrize("contract_id", sorted(REQUIRED_RULES))
def test_contract_is_kept(contract_id, capsys):
    code = lint_imports(
        config_filename=str(PYPROJECT), limit_to_contracts=(contract_id,), no_cache=True, no_logo=True
    )
    output = capsys.readouterr().out
    assert code == 0, f"import-linter contract {contract_id} is broken:\n{output}"
