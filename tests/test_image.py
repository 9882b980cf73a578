"""The container image: the Dockerfile lints clean and keeps its promises, the OCI SDK pruning
keeps exactly what okeguard needs, and ``scripts/build_image.py`` (what the Dockerfile's builder
runs; no Docker engine needed) builds a runtime tree that works."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
BASE_IMAGE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")
RUNTIME_ENV = {
    "HOME": "/var/lib/okeguard",
    "XDG_STATE_HOME": "/var/lib/okeguard/state",
    "MPLCONFIGDIR": "/tmp/matplotlib",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


prune_oci = _load_script("prune_oci")


def tool(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    if found.exists():
        return str(found)
    path = shutil.which(name)
    assert path, f"{name} is not installed (it is in the dev extra)"
    return path


# -- the Dockerfile, parsed -----------------------------------------------------------------


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [a for k, a in self.instructions if k == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages of a Dockerfile: instructions with continuations joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        logical.append(current + line)
        current = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return stages


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.args("ENV"):
        for word in shlex.split(args):
            key, _, value = word.partition("=")
            env[key] = value
    return env


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def test_hadolint_has_no_warnings() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "warning", "--format", "tty", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # ignored rules must be ignored inline, with a reason on the line above
    for match in re.finditer(r"^(.*)\n# hadolint ignore=.*$", DOCKERFILE.read_text(), re.M):
        assert match.group(1).startswith("#"), "explain each hadolint ignore in a comment"


def test_two_stages_on_the_same_pinned_slim_base(stages: list[Stage]) -> None:
    assert [s.name for s in stages] == ["builder", None]
    for stage in stages:
        assert BASE_IMAGE.match(stage.image), stage.image
    assert stages[0].image == stages[1].image


def test_builder_runs_the_tested_build_script(stages: list[Stage]) -> None:
    runs = " ".join(stages[0].args("RUN"))
    assert "scripts/build_image.py --target /opt/okeguard" in runs
    assert env_of(stages[0]).get("PIP_NO_CACHE_DIR") == "1"
    copied = " ".join(stages[0].args("COPY"))
    for needed in ("pyproject.toml", "okeguard/", "examples/demo/", "scripts/prune_oci.py"):
        assert needed in copied
        assert (ROOT / needed).exists()


def test_final_stage_copies_only_the_venv(stages: list[Stage]) -> None:
    final = stages[-1]
    assert final.args("COPY") == ["--from=builder /opt/okeguard /opt/okeguard"]
    assert not final.args("ADD")


def test_final_stage_can_install_nothing(stages: list[Stage]) -> None:
    runs = " ".join(stages[-1].args("RUN"))
    forbidden = r"\b(curl|wget|apt-get\s+install|apt\s+install|apk\s+add|pip\s+install|gcc)\b"
    assert not re.search(forbidden, runs), runs
    for gone in (
        "/usr/local/bin/pip*",
        "/usr/local/lib/python3.11/ensurepip",
        "/usr/local/lib/python3.11/site-packages/pip",
        "/usr/local/lib/python3.11/site-packages/setuptools",
        "/usr/local/lib/python3.11/site-packages/wheel",
        "/var/lib/apt/lists/*",
    ):
        assert gone in runs.split(), gone


def test_final_stage_runs_okeguard_as_numeric_non_root(stages: list[Stage]) -> None:
    final = stages[-1]
    assert final.args("USER")[-1] == "10001:10001"
    assert json.loads(final.args("ENTRYPOINT")[-1]) == ["okeguard"]
    assert json.loads(final.args("CMD")[-1]) == ["serve"]
    assert sorted(" ".join(final.args("EXPOSE")).split()) == ["3000", "8081"]
    env = env_of(final)
    for key, value in RUNTIME_ENV.items():
        assert env.get(key) == value, key
    assert env["PATH"].startswith("/opt/okeguard/bin:")


def test_final_stage_is_labelled(stages: list[Stage]) -> None:
    labels = " ".join(stages[-1].args("LABEL"))
    for key in ("title", "description", "version", "licenses", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_dockerignore_allows_only_the_build_inputs() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "README.md",
        "okeguard",
        "examples/demo",
        "scripts/build_image.py",
        "scripts/prune_oci.py",
    }


# -- pruning the OCI SDK --------------------------------------------------------------------


def installed_oci() -> Path:
    spec = importlib.util.find_spec("oci")
    assert spec and spec.origin
    return Path(spec.origin).parent


def test_keep_covers_every_oci_service_okeguard_uses() -> None:
    services = prune_oci.service_packages(installed_oci())
    used = set()
    for file in (ROOT / "okeguard").rglob("*.py"):
        text = file.read_text(encoding="utf-8")
        used |= {m for m in re.findall(r"\boci\.([a-z_]+)", text) if m in services}
        used |= {m for m in re.findall(r"[\"']oci\.([a-z_]+)[\"']", text) if m in services}
    assert used, "okeguard uses no OCI service?"
    assert used <= set(prune_oci.KEEP), used - set(prune_oci.KEEP)


def test_keep_is_the_import_closure_of_the_installed_sdk() -> None:
    kept, why = prune_oci.closure(installed_oci(), prune_oci.KEEP)
    assert not set(why) - set(prune_oci.KEEP), f"add to KEEP: {why}"
    assert kept == set(prune_oci.KEEP)


def _fake_sdk(site: Path) -> Path:
    oci = site / "oci"
    files = {
        "__init__.py": (
            "from . import auth, config\n"
            "__all__ = ['auth', 'config', 'alpha', 'beta', 'gamma', 'delta']\n"
            "if False:\n    from . import alpha, beta, gamma, delta\n"
        ),
        "config.py": "",
        "util.py": "# oci.delta is mentioned in a comment only\n",
        "auth/__init__.py": "def signer():\n    import oci\n    return oci.beta.Client\n",
        "alpha/__init__.py": "from oci.util import x\nfrom ..gamma import models\n",
        "beta/__init__.py": '"""see oci.delta"""\n',
        "gamma/__init__.py": "",
        "gamma/models.py": "",
        "delta/__init__.py": "",
        "delta/big.py": "x = 1\n" * 1000,
    }
    for name, text in files.items():
        (oci / name).parent.mkdir(parents=True, exist_ok=True)
        (oci / name).write_text(text)
    record = site / "oci-1.0.dist-info" / "RECORD"
    record.parent.mkdir()
    record.write_text("".join(f"oci/{name},,\n" for name in files))
    return oci


def test_prune_follows_real_imports_not_comments(tmp_path: Path) -> None:
    oci = _fake_sdk(tmp_path)
    result = prune_oci.prune(tmp_path, keep=["alpha"])
    # alpha -> gamma (relative import); auth (SDK core) -> beta; delta only in comments
    assert result.kept == ("alpha", "beta", "gamma")
    assert result.deleted == ("delta",)
    assert not (oci / "delta").exists() and (oci / "gamma" / "models.py").exists()
    assert result.after < result.before
    record = (tmp_path / "oci-1.0.dist-info" / "RECORD").read_text()
    assert "oci/delta/" not in record and "oci/gamma/models.py" in record


def test_prune_refuses_an_unknown_keep_name(tmp_path: Path) -> None:
    _fake_sdk(tmp_path)
    with pytest.raises(SystemExit, match="omega"):
        prune_oci.prune(tmp_path, keep=["omega"])


# -- the build, end to end (network: PyPI, like CI's install) --------------------------------


@pytest.mark.slow
def test_build_image_script_builds_a_pruned_working_tree(tmp_path: Path) -> None:
    target = tmp_path / "opt-okeguard"
    report_file = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "build_image.py"),
            "--target",
            str(target),
            "--report",
            str(report_file),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads(report_file.read_text())
    print(
        f"oci/ {report['oci_mb_before']} MB -> {report['oci_mb_after']} MB; "
        f"venv {report['venv_mb_before_prune']} MB -> {report['venv_mb_after']} MB"
    )
    # the script verified the CLI and every import; check what it says it checked
    verified = report["verified"]
    assert verified["version"].startswith("okeguard ")
    assert verified["checks"] > 0 and verified["demo_findings"] > 0
    assert verified["okeguard_modules_imported"] > 50
    assert len(verified["oci_clients"]) == 7
    assert report["oci_services_kept"] == sorted(prune_oci.KEEP)
    assert set(report["oci_services_loaded_at_run_time"]) <= set(report["oci_services_kept"])
    assert report["oci_mb_after"] < report["oci_mb_before"] / 4
    # nothing left to install with, in the tree the image ships
    site = next(target.glob("lib/python3*/site-packages"))
    assert not list(site.glob("pip*")) and not list(site.glob("setuptools*"))
    assert not list(target.glob("bin/pip*"))
    assert (target / "bin" / "okeguard").exists()
