"""Rendering kustomizations and Helm charts, and the repository walk that finds them.

The renderers are stand-ins on ``PATH`` (small scripts that print what ``kubectl kustomize`` or
``helm template`` print and record how they were called), so these tests do not depend on the
tools being installed; tests/e2e/test_repository_scan.py runs the real kubectl when present.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from okeguard.errors import InputError
from okeguard.inventory import render
from okeguard.inventory.manifests import load_manifests, skipped_files_phrase
from tests.helpers import deployment


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def fake_tool(bin_dir: Path, name: str, stdout: str, *, code: int = 0, stderr: str = "") -> Path:
    """An executable ``name`` in ``bin_dir`` that records its arguments in ``name.args`` and
    prints ``stdout`` and ``stderr``, exiting with ``code``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / name
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"open({str(bin_dir / (name + '.args'))!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"sys.stdout.write({stdout!r})\n"
        f"sys.stderr.write({stderr!r})\n"
        f"sys.exit({code})\n"
    )
    script.chmod(0o755)
    return script


def calls(bin_dir: Path, name: str) -> list[list[str]]:
    args = bin_dir / f"{name}.args"
    return [json.loads(line) for line in args.read_text().splitlines()] if args.exists() else []


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory that is the whole PATH: no kubectl, kustomize or helm until a test
    puts a stand-in there."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


PRIVILEGED = deployment(
    "web",
    namespace="prod",
    containers=[{"name": "web", "image": "nginx:1.27", "securityContext": {"privileged": True}}],
)
HELM_OUTPUT = (
    "---\n# Source: web/templates/service.yaml\napiVersion: v1\nkind: Service\n"
    "metadata: {name: web}\nspec: {ports: [{port: 80}]}\n"
    "---\n# Source: web/templates/deployment.yaml\n"
    + yaml.safe_dump(deployment("web", namespace="default"))
    + "---\n# Source: web/charts/redis/templates/statefulset.yaml\n"
    + yaml.safe_dump(deployment("redis", namespace="default"))
)


def chart(root: Path, name: str = "web", extra: str = "") -> Path:
    write(root / "Chart.yaml", f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n{extra}")
    write(root / "values.yaml", "replicas: 2\nimage: {tag: latest}\n")
    write(root / "templates" / "deployment.yaml", "kind: Deployment\nname: {{ .Release.Name }}\n")
    return root


def kustomize_tree(root: Path) -> Path:
    """base/ (a deployment) and overlays/prod/ (the base plus a patch that is not an object)."""
    write(root / "base" / "kustomization.yaml", "resources: [deployment.yaml]\n")
    write(root / "base" / "deployment.yaml", yaml.safe_dump(deployment("web")))
    write(
        root / "overlays" / "prod" / "kustomization.yaml",
        "resources: [../../base]\nnamespace: prod\npatches:\n- path: privileged.yaml\n",
    )
    write(
        root / "overlays" / "prod" / "privileged.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec: {template: {spec: {containers: [{name: web, securityContext: {privileged: true}}]}}}\n",
    )
    return root


def test_a_directory_is_a_kustomization_before_it_is_a_chart() -> None:
    assert render.renderer_of(["kustomization.yaml", "Chart.yaml"]) == "kustomize"
    assert render.renderer_of(["Kustomization"]) == "kustomize"
    assert render.renderer_of(["kustomization.yml", "x.yaml"]) == "kustomize"
    assert render.renderer_of(["Chart.yaml", "values.yaml"]) == "helm"
    assert render.renderer_of(["chart.yaml", "deploy.yaml"]) is None


def test_kustomization_references_are_its_local_inputs(tmp_path: Path) -> None:
    write(
        tmp_path / "app" / "kustomization.yaml",
        """\
resources: [../base, svc.yaml, "https://github.com/org/repo//deploy?ref=v1"]
components: [../components/tls]
patches:
- path: patch.yaml
- patch: |-
    - op: add
      path: /spec/replicas
      value: 3
patchesStrategicMerge: [old-patch.yaml]
configMapGenerator:
- name: cfg
  files: [app.properties, settings=../shared/settings.json]
  envs: [.env]
""",
    )
    app = tmp_path / "app"
    found = render.kustomization_references(app)
    expected = {
        tmp_path / "base",
        app / "svc.yaml",
        tmp_path / "components" / "tls",
        app / "patch.yaml",
        app / "old-patch.yaml",
        app / "app.properties",
        tmp_path / "shared" / "settings.json",
        app / ".env",
    }
    assert found == {p.resolve() for p in expected}
    write(tmp_path / "broken" / "kustomization.yaml", "resources: [a\n")
    assert render.kustomization_references(tmp_path / "broken") == set()  # kubectl will say why


def test_a_missing_renderer_skips_the_directory_with_the_command_to_run(
    tmp_path: Path, tools: Path
) -> None:
    tree = kustomize_tree(tmp_path / "deploy")
    skipped = render.render_kustomization(tree / "overlays" / "prod")
    assert isinstance(skipped, render.NotRendered)
    assert skipped.reason.startswith("kubectl not found: skipped kustomization ")
    assert f"`kubectl kustomize {tree / 'overlays' / 'prod'}`" in skipped.reason
    no_helm = render.render_chart(chart(tmp_path / "web"))
    assert isinstance(no_helm, render.NotRendered)
    assert no_helm.reason == (
        f"helm not found: skipped chart {tmp_path / 'web'}; render it with "
        f"`helm template {tmp_path / 'web'}` and scan the output"
    )
    library = chart(tmp_path / "lib", extra="type: library\n")
    assert render.render_chart(library) is None  # renders nothing, even with helm


def test_standalone_kustomize_is_used_without_kubectl(tmp_path: Path, tools: Path) -> None:
    fake_tool(tools, "kustomize", yaml.safe_dump(PRIVILEGED))
    tree = kustomize_tree(tmp_path)
    rendered = render.render_kustomization(tree / "overlays" / "prod")
    assert isinstance(rendered, render.Rendered)
    assert calls(tools, "kustomize") == [["build", str(tree / "overlays" / "prod")]]
    origin = rendered.origins()
    assert origin(1) == f"{tree / 'overlays' / 'prod' / 'kustomization.yaml'}:1 (kustomize)"


def test_helm_objects_point_at_the_template_named_by_source(tmp_path: Path, tools: Path) -> None:
    fake_tool(tools, "helm", HELM_OUTPUT)
    web = chart(tmp_path / "charts" / "web-chart")
    rendered = render.render_chart(web)
    assert isinstance(rendered, render.Rendered)
    assert calls(tools, "helm") == [["template", str(web)]]
    inv = load_manifests([str(tmp_path)])
    origins = {
        (o.kind, o.name): o.origin for o in inv.objects["Deployment"] + inv.objects["Service"]
    }
    assert origins == {
        ("Service", "web"): f"{web / 'templates' / 'service.yaml'}:1 (helm)",
        ("Deployment", "web"): f"{web / 'templates' / 'deployment.yaml'}:1 (helm)",
        (
            "Deployment",
            "redis",
        ): f"{web / 'charts' / 'redis' / 'templates' / 'statefulset.yaml'}:1 (helm)",
    }
    assert inv.source.detail["rendered"] == [str(web)]
    assert inv.source.detail["skipped_files"] == []  # values.yaml is helm's, not skipped by us


@pytest.mark.parametrize(
    ("tool", "stderr", "expected"),
    [
        (
            "kubectl",
            'E1205 07:55:11.759680    3786 run.go:72] "command failed" err="accumulating '
            "resources: accumulation err='accumulating resources from '../../base': "
            'evalsymlink failure on \\"/x/base\\"\'"\n',
            "kustomize failed: accumulating resources: accumulation err='accumulating resources "
            "from '../../base': evalsymlink failure on \"/x/base\"'",
        ),
        (
            "helm",
            "Error: An error occurred while checking for chart dependencies. You may need to run "
            "`helm dependency build` to fetch missing dependencies: found in Chart.yaml, but "
            "missing in charts/ directory: redis\n",
            "helm template failed: An error occurred while checking for chart dependencies.",
        ),
    ],
)
def test_a_renderer_that_fails_is_one_line_naming_the_directory(
    tmp_path: Path, tools: Path, tool: str, stderr: str, expected: str
) -> None:
    fake_tool(tools, tool, "", code=1, stderr="some progress line\n" + stderr)
    if tool == "kubectl":
        folder = kustomize_tree(tmp_path) / "overlays" / "prod"
    else:
        folder = chart(tmp_path / "web")
    with pytest.raises(InputError) as raised:
        load_manifests([str(tmp_path)])
    message = str(raised.value)
    assert message.startswith(f"{folder}: {expected}"), message
    assert "\n" not in message
    if tool == "helm":
        assert message.endswith(f"(run `helm dependency build {folder}` first)")


def test_a_walk_skips_what_is_not_kubernetes_and_counts_it(tmp_path: Path, tools: Path) -> None:
    write(tmp_path / "k8s" / "app.yaml", yaml.safe_dump(PRIVILEGED))
    write(tmp_path / "docker-compose.yml", "services:\n  web: {image: nginx}\n")
    write(tmp_path / "package.json", json.dumps({"name": "shop", "version": "1.0.0"}))
    write(tmp_path / "tsconfig.json", '{\n  // comments are not JSON\n  "strict": true,\n}\n')
    write(tmp_path / "openapi.yaml", "openapi: 3.0.0\ninfo: {title: shop}\n")
    write(tmp_path / "empty.yaml", "")
    write(tmp_path / "mkdocs.yml", "site_name: shop\n---\nnav: []\n")  # two documents
    write(tmp_path / ".github" / "workflows" / "ci.yml", "on: push\n")
    write(tmp_path / "node_modules" / "pkg" / "deploy.yaml", yaml.safe_dump(deployment("npm")))
    write(tmp_path / "vendor" / "k8s.io" / "x.yaml", yaml.safe_dump(deployment("vendored")))
    write(tmp_path / "notes.txt", "apiVersion: not a manifest suffix")
    inv = load_manifests([str(tmp_path)])
    assert [o.name for o in inv.of_kind("Deployment")] == ["web"]
    assert inv.source.detail["skipped_files"] == [
        str(tmp_path / name)
        for name in (
            "docker-compose.yml",
            "empty.yaml",
            "mkdocs.yml",
            "openapi.yaml",
            "package.json",
            "tsconfig.json",
        )
    ]
    assert inv.source.detail["files"] == 1
    assert inv.source.detail["namespaces"] == ["prod"]
    assert skipped_files_phrase(6) == "6 files that are not Kubernetes objects"
    assert skipped_files_phrase(1) == "1 file that is not a Kubernetes object"


def test_what_looks_like_a_manifest_is_still_an_error_in_a_walk(tmp_path: Path) -> None:
    bad = write(
        tmp_path / "a" / "broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {a: [\n"
    )
    with pytest.raises(InputError, match=rf"^{bad}:\d+: invalid YAML"):
        load_manifests([str(tmp_path)])
    bad.unlink()
    mixed = write(
        tmp_path / "b" / "mixed.yaml",
        "replicas: 3\n---\n" + yaml.safe_dump(deployment("web")),
    )
    with pytest.raises(InputError, match=rf"^{mixed}:1: not a Kubernetes object: no apiVersion"):
        load_manifests([str(tmp_path)])
    mixed.unlink()
    nameless = write(tmp_path / "c" / "nameless.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {}\n")
    with pytest.raises(InputError, match=rf"^{nameless}:1: Pod has no metadata.name"):
        load_manifests([str(tmp_path)])


def test_a_file_named_explicitly_must_hold_kubernetes_objects(tmp_path: Path) -> None:
    values = write(tmp_path / "values.yaml", "replicas: 3\n")
    with pytest.raises(InputError, match=rf"^{values}:1: not a Kubernetes object: no kind$"):
        load_manifests([str(values)])


def test_nothing_to_scan_is_an_error(tmp_path: Path, tools: Path) -> None:
    with pytest.raises(
        InputError, match=r"^nothing to scan: no Kubernetes objects in standard input$"
    ):
        load_manifests(["-"], stdin_text="")
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        InputError, match=rf"^nothing to scan: no Kubernetes objects in {tmp_path / 'empty'}$"
    ):
        load_manifests([str(tmp_path / "empty")])
    write(tmp_path / "repo" / "values.yaml", "replicas: 3\n")
    kustomize_tree(tmp_path / "repo" / "deploy")
    with pytest.raises(InputError) as raised:
        load_manifests([str(tmp_path / "repo")])
    assert str(raised.value) == (
        f"nothing to scan: no Kubernetes objects in {tmp_path / 'repo'} (skipped 1 file that is "
        "not a Kubernetes object, -v lists them; 1 directory not rendered, see above)"
    )
    only_unchecked_kinds = write(
        tmp_path / "pvc.yaml", "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: d}\n"
    )
    assert load_manifests([str(only_unchecked_kinds)]).skipped_kinds == {"PersistentVolumeClaim": 1}


def test_an_overlay_is_rendered_once_and_its_base_and_patch_are_not_read_raw(
    tmp_path: Path, tools: Path
) -> None:
    fake_tool(tools, "kubectl", yaml.safe_dump(PRIVILEGED))
    tree = kustomize_tree(tmp_path / "deploy")
    write(tmp_path / "deploy" / "README.yaml", "title: not an object\n")
    inv = load_manifests([str(tmp_path)])
    prod = tree / "overlays" / "prod"
    assert calls(tools, "kubectl") == [["kustomize", str(prod)]]  # the base only through it
    (web,) = inv.of_kind("Deployment")
    assert (web.namespace, web.origin) == ("prod", f"{prod / 'kustomization.yaml'}:1 (kustomize)")
    assert inv.source.detail["rendered"] == [str(prod)]
    assert inv.source.detail["skipped_files"] == [str(tmp_path / "deploy" / "README.yaml")]
    # named on the command line, the base is rendered on its own too
    load_manifests([str(tree / "base"), str(prod)])
    assert calls(tools, "kubectl")[1:] == [
        ["kustomize", str(tree / "base")],
        ["kustomize", str(prod)],
    ]
    # and a kustomization file named explicitly stands for its directory
    load_manifests([str(prod / "kustomization.yaml")])
    assert calls(tools, "kubectl")[-1] == ["kustomize", str(prod)]


def test_rendered_output_that_is_not_yaml_names_the_directory(tmp_path: Path, tools: Path) -> None:
    fake_tool(tools, "kubectl", "apiVersion: v1\nkind: [\n")
    prod = kustomize_tree(tmp_path) / "overlays" / "prod"
    with pytest.raises(InputError, match=rf"^{prod} \(kustomize output\):\d+: invalid YAML"):
        load_manifests([str(prod)])
