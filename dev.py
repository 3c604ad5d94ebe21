#!/usr/bin/env python3
"""Developer entry point. Standard library only: it runs on a fresh machine with just Python 3.11.

    python3 dev.py demo            the embedded demo on http://127.0.0.1:8000 (SQLite, simulators, demo data)
    python3 dev.py test [ARGS]     the whole test suite; ARGS go to pytest (e.g. -x -q -k outbox)
    python3 dev.py lint            ruff check + mypy
    python3 dev.py bench [ARGS]    the load harness (python -m bench ...; needs a running server)
    python3 dev.py setup           only create/refresh .venv
    python3 dev.py lock            rewrite requirements.lock from .venv (after changing pyproject.toml)

Every command first makes sure .venv exists and holds exactly what pyproject.toml and
requirements.lock ask for: the hash of both files is kept in .venv/estate-install.stamp, and
the install runs again when it changes.
"""

# The commands run here are this repository's own tools with fixed arguments.
# ruff: noqa: S603, S606

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
STAMP = VENV / "estate-install.stamp"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")

# Packages mypy checks (the test suite and bench are checked by ruff only).
TYPED_PACKAGES = [
    "api",
    "services",
    "demo",
    "integrations",
    "certificates",
    "notifications",
    "config",
    "standards",
]

# Extra pytest arguments every `dev.py test` run gets. Coverage goes here once it is configured,
# e.g. ["--cov", "--cov-report=term-missing:skip-covered"] (pytest-cov is already a dev dependency).
COVERAGE_ARGS: list[str] = ["--cov", "--cov-report=term-missing:skip-covered"]


def say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def run(command: list[str | Path], **kwargs: object) -> int:
    shown = " ".join(str(part) for part in command)
    say(f"$ {shown}")
    started = time.monotonic()
    code = subprocess.call([str(part) for part in command], cwd=ROOT, **kwargs)  # type: ignore[arg-type]
    say(f"exit {code} after {time.monotonic() - started:.1f}s: {shown}")
    return code


def check(command: list[str | Path]) -> None:
    code = run(command)
    if code != 0:
        sys.exit(code)


def _install_hash() -> str:
    digest = hashlib.sha256()
    for path in (PYPROJECT, LOCK):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"<missing>")
    digest.update(sys.version.split()[0].encode())
    return digest.hexdigest()


def ensure_venv(*, constrained: bool = True) -> None:
    """`constrained=False` (for `lock`) lets pip pick versions for what pyproject.toml changed."""
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"[dev] Python 3.11 is required (pyproject.toml); this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        say(f"creating {VENV.relative_to(ROOT)} with {sys.executable}")
        check([sys.executable, "-m", "venv", VENV])
        STAMP.unlink(missing_ok=True)
    wanted = _install_hash()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        say(f"{VENV.relative_to(ROOT)} is up to date with pyproject.toml and requirements.lock")
        return
    say("installing the project and its pinned dependencies into .venv")
    constraints: list[str | Path] = ["-c", LOCK] if constrained and LOCK.exists() else []
    if constrained and not constraints:
        say("requirements.lock is missing: installing unpinned (run `python3 dev.py lock` afterwards)")
    check([PYTHON, "-m", "pip", "install", "--disable-pip-version-check", *constraints, "-e", ".[dev]"])
    if constrained:
        STAMP.write_text(wanted + "\n")


def venv_env() -> dict[str, str]:
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def cmd_demo(args: list[str]) -> int:
    say("starting the embedded demo: SQLite under var/, simulators on 127.0.0.1:8810-8816, demo data")
    say("base URL http://127.0.0.1:8000 (API docs /docs); Ctrl-C stops it")
    command = [str(PYTHON), "-m", "api", "serve", "--demo", *args]
    say("$ " + " ".join(command))
    if os.name == "posix":
        os.chdir(ROOT)
        os.execve(command[0], command, venv_env())  # the server gets Ctrl-C directly
    try:
        return subprocess.call(command, cwd=ROOT, env=venv_env())
    except KeyboardInterrupt:
        return 130


# Debian packages the tests use, each with what shows it is there (a command, or a file for fonts).
# The same list as .ci/run's ensure_system_packages; tests/support/tools.py's require_tool fails a
# test, naming the package, when one is still missing.
TEST_PACKAGES: list[tuple[str, str]] = [
    ("poppler-utils", "pdftoppm"),
    ("zbar-tools", "zbarimg"),
    ("chromium", "chromium"),
    ("chromium-driver", "chromedriver"),
    ("fonts-wqy-zenhei", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    ("fonts-hanazono", "/usr/share/fonts/truetype/hanazono/HanaMinB.ttf"),
]
APT_TIMEOUT_S = 600


def _missing_test_packages() -> list[str]:
    return [
        package
        for package, probe in TEST_PACKAGES
        if not (Path(probe).exists() if probe.startswith("/") else shutil.which(probe))
    ]


def _apt(arguments: list[str]) -> bool:
    command = ["apt-get", *arguments]
    say("$ " + " ".join(command))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(command, env=env, timeout=APT_TIMEOUT_S, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        say(f"apt-get did not finish within {APT_TIMEOUT_S}s")
        return False


def ensure_test_packages() -> None:
    """Best effort: install missing test tools as root with apt-get; otherwise say how."""
    missing = _missing_test_packages()
    if not missing:
        return
    line = "apt-get install -y --no-install-recommends " + " ".join(missing)
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if not (is_root and shutil.which("apt-get")):
        say(f"missing {', '.join(missing)}: the tests that need them will fail. Install with:")
        say(f"  sudo apt-get update && sudo {line}")
        return
    say(f"installing what the tests need: {', '.join(missing)}")
    if not _apt(["update", "-qq"]):
        say("apt-get update failed; trying the install with the package lists there are")
    _apt(["install", "-y", "-qq", "--no-install-recommends", *missing])
    still = _missing_test_packages()
    if still:
        say(f"could not install {', '.join(still)}: the tests that need them will fail. Try: {line}")


def cmd_test(args: list[str]) -> int:
    ensure_test_packages()
    return run([PYTHON, "-m", "pytest", *COVERAGE_ARGS, *args], env=venv_env())


def cmd_lint(args: list[str]) -> int:
    ruff = run([PYTHON, "-m", "ruff", "check", ".", *args], env=venv_env())
    mypy = run([PYTHON, "-m", "mypy", *TYPED_PACKAGES], env=venv_env())
    return ruff or mypy


def cmd_bench(args: list[str]) -> int:
    return run([PYTHON, "-m", "bench", *args], env=venv_env())


def cmd_setup(args: list[str]) -> int:
    return 0


def cmd_lock(args: list[str]) -> int:
    say(f"writing {LOCK.name} from .venv (pip freeze --all --exclude-editable, without pip)")
    frozen = subprocess.run(
        [PYTHON, "-m", "pip", "freeze", "--all", "--disable-pip-version-check", "--exclude-editable"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # --all keeps setuptools (sanic needs it at run time); pip itself is the installer, not a pin.
    pins = sorted(
        (line for line in frozen.splitlines() if line and not line.startswith(("#", "pip=="))), key=str.lower
    )
    # A package installed from a local wheel freezes as `name @ file:///...`: a path that exists on
    # this machine only, so a clean checkout could not install. Refuse it rather than write it.
    local = [line for line in pins if " @ file:" in line]
    if local:
        say("refusing to lock packages installed from local files: " + ", ".join(local))
        say("reinstall them from the index (pip install --force-reinstall NAME==VERSION) and lock again")
        return 1
    header = [
        "# Every package of the dev environment, pinned. Used as constraints:",
        "#   pip install -c requirements.lock -e .[dev]     (python3 dev.py setup)",
        "#   pip install -c requirements.lock .             (Dockerfile)",
        "# Regenerate after changing pyproject.toml: python3 dev.py lock",
    ]
    LOCK.write_text("\n".join(header + pins) + "\n")
    STAMP.write_text(_install_hash() + "\n")
    say(f"{len(pins)} pins written")
    return 0


COMMANDS = {
    "demo": cmd_demo,
    "test": cmd_test,
    "lint": cmd_lint,
    "bench": cmd_bench,
    "setup": cmd_setup,
    "lock": cmd_lock,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help", "help") else 2
    command, rest = argv[0], argv[1:]
    ensure_venv(constrained=command != "lock")
    return COMMANDS[command](rest)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:  # the child got Ctrl-C too and has reported it
        sys.exit(130)
