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
    "services-no-adapters": ({"services"}, {"integrations.factory", "integrations.simulator", "demo"}),
    "standards-is-a-leaf": (
        {"standards"},
        {"api", "services", "integrations", "certificates", "notifications", "config"},
    ),
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


DOMAIN_MODULES = [
    "services.guardianship.links",
    "services.guardianship.feed",
    "services.registry.changes",
    "services.identity.auth",
    "services.messages.sms",
]


@pytest.mark.parametrize("module", DOMAIN_MODULES)
def test_a_domain_module_loads_no_web_server_and_no_simulator(module):
    """Issue 9: importing a use case once pulled in all seven simulators and aiohttp's web server
    (the outbox handlers imported integrations.factory). A fresh interpreter says what it loads."""
    import subprocess
    import sys

    probe = (
        f"import sys, {module}; "
        "bad = sorted(m for m in sys.modules if m.startswith('aiohttp.web') or m.endswith('simulator') "
        "or m in ('integrations.factory', 'demo', 'sanic')); print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"{module} loads {out.stdout.strip()}"


def test_every_domain_has_a_public_module_contract():
    packages = (ROOT / "services").iterdir()
    domains = sorted(p.name for p in packages if (p / "__init__.py").exists() and p.name != "migrations")
    contracts = _contracts()
    for domain in domains:
        home = ROOT / "services" / domain
        packages = [p.name for p in home.iterdir() if (p / "__init__.py").exists()]
        modules = [f.stem for f in home.glob("*.py")] + packages
        private = [m for m in modules if m not in ("__init__", "models", "topics")]
        if private:
            contract = contracts.get(f"{domain}-through-its-public-module")
            assert contract is not None, f"services.{domain} has no public-module contract in pyproject.toml"
            assert set(contract["forbidden_modules"]) == {f"services.{domain}.{m}" for m in private}


@pytest.mark.parametrize(
    "contract_id",
    sorted(c for c in _contracts() if c.endswith("-public-module") or c == "services-no-adapters"),
)
def test_domain_contract_is_kept(contract_id, capsys):
    code = lint_imports(
        config_filename=str(PYPROJECT), limit_to_contracts=(contract_id,), no_cache=True, no_logo=True
    )
    assert code == 0, capsys.readouterr().out
