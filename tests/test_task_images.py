"""Task folders as users write them, with dependencies, through the real loop.

Packages come from an index the test serves itself, in a container on the default bridge
network, with a wheel built here; the overnight process is pointed at it the way a machine's
pip would be (PIP_INDEX_URL, PIP_TRUSTED_HOST, PIP_CERT). Nothing else is contacted.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import time
import urllib.request
import zipfile
from pathlib import Path

import docker.errors
import pytest
from conftest import committed_repo, git, results, run_cli, write_script, write_task

from sandbox.image import DEFAULT_IMAGE
from sandbox.task_image import TASK_LABEL

PREPARE = 'METRIC = "score"\nDIRECTION = "maximize"\nTIME_BUDGET = 5\n'
TRAIN = "import tinydep\n\nBONUS = 0\nprint('score:', tinydep.VALUE + BONUS)\n"
SERVE = """
import functools, http.server, os, ssl, threading, time

handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory="/srv/www")

def https():
    while not os.path.exists("/srv/tls/server.pem"):
        time.sleep(0.1)
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 8443), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain("/srv/tls/server.pem", "/srv/tls/server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()

threading.Thread(target=https, daemon=True).start()
http.server.ThreadingHTTPServer(("0.0.0.0", 8000), handler).serve_forever()
"""


def build_wheel(folder: Path, name: str, version: str, value: int) -> Path:
    """A pure-Python wheel of one module, `VALUE = value`, made with zipfile."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = {value}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def write_index(www: Path, wheels: list[Path]) -> None:
    """A PEP 503 simple index of the wheels, all of one project."""
    (www / "packages").mkdir(parents=True)
    project = wheels[0].name.split("-")[0]
    links = []
    for wheel in wheels:
        (www / "packages" / wheel.name).write_bytes(wheel.read_bytes())
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        links.append(f'<a href="../../packages/{wheel.name}#sha256={digest}">{wheel.name}</a>')
    (www / "simple" / project).mkdir(parents=True)
    (www / "simple" / "index.html").write_text(f'<a href="{project}/">{project}</a>\n')
    (www / "simple" / project / "index.html").write_text("\n".join(links) + "\n")


class Index:
    def __init__(self, ip: str, ca: Path) -> None:
        self.ip, self.ca = ip, ca
        self.http = f"http://{ip}:8000/simple/"
        self.https = f"https://{ip}:8443/simple/"


@pytest.fixture(scope="module")
def index(docker_client, tmp_path_factory):
    """tinydep 1.0 (VALUE = 42) and 2.0 (VALUE = 43), over HTTP and over HTTPS with a test CA."""
    root = tmp_path_factory.mktemp("index")
    wheels = [build_wheel(root, "tinydep", "1.0", 42), build_wheel(root, "tinydep", "2.0", 43)]
    write_index(root / "www", wheels)
    (root / "serve.py").write_text(SERVE)
    (root / "tls").mkdir()
    container = docker_client.containers.run(
        DEFAULT_IMAGE,
        ["python3", "/srv/serve.py"],
        detach=True,
        volumes={str(root): {"bind": "/srv", "mode": "ro"}},
        labels={"org.overnight-test.index": str(os.getpid())},
    )
    try:
        container.reload()
        ip = container.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        served = Index(ip, make_certificates(root / "tls", ip))
        wait_until_serving(served)
        yield served
    finally:
        container.remove(force=True)


def make_certificates(tls: Path, ip: str) -> Path:
    """A CA of the test's own and a server certificate for the index's address, signed by it."""

    def openssl(command: str, *more: str) -> None:
        args = ["openssl", *command.split(), *more]
        subprocess.run(args, cwd=tls, check=True, capture_output=True)

    ca = "-subj", "/CN=overnight test CA"
    openssl("req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2", *ca)
    openssl("req -newkey rsa:2048 -nodes -keyout server.key -out server.csr", "-subj", f"/CN={ip}")
    (tls / "ext.cnf").write_text(f"subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\n")
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.tmp "
        "-days 2 -extfile ext.cnf"
    )
    (tls / "server.tmp").rename(tls / "server.pem")
    return tls / "ca.pem"


def wait_until_serving(index: Index) -> None:
    import ssl

    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=str(index.ca))),
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            for url in (index.http, index.https):
                opener.open(url + "tinydep/", timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def use_index(monkeypatch):
    """Point this process's pip settings at the test's index, and at nothing else."""

    def point(url: str, ca: Path | None = None, trusted: str | None = None) -> None:
        for name in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_INDEX"):
            monkeypatch.delenv(name, raising=False)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "PIP_NO_INDEX"):
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(name.lower(), raising=False)
        monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
        monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
        monkeypatch.setenv("PIP_FIND_LINKS", "")
        monkeypatch.setenv("PIP_INDEX_URL", url)
        monkeypatch.setenv("PIP_RETRIES", "0")
        if ca is not None:
            monkeypatch.setenv("PIP_CERT", str(ca))
        if trusted is not None:
            monkeypatch.setenv("PIP_TRUSTED_HOST", trusted)
        else:
            monkeypatch.delenv("PIP_TRUSTED_HOST", raising=False)

    return point


@pytest.fixture
def task_images(docker_client):
    """Task folders whose images the test removes at the end."""
    folders: list[Path] = []
    yield folders
    for folder in folders:
        for image in docker_client.images.list(filters={"label": f"{TASK_LABEL}={folder}"}):
            docker_client.images.remove(image.id, force=True)


def images_of(docker_client, task: Path) -> list[str]:
    return [i.id for i in docker_client.images.list(filters={"label": f"{TASK_LABEL}={task}"})]


def no_build_container_left(docker_client) -> bool:
    mine = docker_client.containers.list(
        all=True, filters={"name": f"overnight-build-{os.getpid()}-"}
    )
    return mine == []


def in_image(docker_client, image: str, code: str) -> str:
    out = docker_client.containers.run(
        image, ["python3", "-c", code], network_mode="none", remove=True
    )
    return out.decode().strip()


def night(task: Path, tag: str, capsys) -> tuple[int, str]:
    """`overnight run` with one replayed proposal that raises the score by one."""
    edit = {"command": "str_replace", "old_str": "BONUS = 0", "new_str": "BONUS = 1"}
    script = write_script(task.parent / f"{tag}.jsonl", [{"description": "more", "calls": [edit]}])
    args = ("--tag", tag, "--provider", "replay", "--script", str(script))
    return run_cli("run", str(task), *args, capsys=capsys)


def image_of_run(task: Path, tag: str) -> str:
    import json

    return json.loads((task / ".overnight" / tag / "config.json").read_text())["image"]


def build_log(task: Path, image: str) -> str:
    text = (task / ".overnight" / "images" / f"{image.split(':')[1]}.log").read_text()
    assert "\x1b" not in text and "\r" not in text
    return text


def test_a_pyproject_task_gets_its_dependencies_once_and_a_new_image_when_they_change(
    tmp_path, capsys, docker_client, index, use_index, task_images, no_leftover_containers
):
    use_index(index.http, trusted=index.ip)
    pyproject = (
        '[project]\nname = "mine"\nversion = "0.1.0"\ndependencies = ["tinydep>=1,<2"]\n\n'
        '[tool.uv]\npackage = false\ndev-dependencies = ["pytest>=8"]\n'
    )
    files = {"program.md": "x", "prepare.py": PREPARE, "train.py": TRAIN}
    task = committed_repo(write_task(tmp_path / "task", {**files, "pyproject.toml": pyproject}))
    task_images.append(task)
    code, out = night(task, "a", capsys)
    assert code == 0, out
    assert [(r.status.value, r.metric) for r in results(task, "a")] == [("keep", 42), ("keep", 43)]
    image = image_of_run(task, "a")
    log = task / ".overnight" / "images" / f"{image.split(':')[1]}.log"
    assert image.startswith("overnight/task:") and out.count("building image") == 1
    assert f"log: {log}" in out
    assert "Successfully installed tinydep-1.0" in build_log(task, image)
    assert in_image(docker_client, image, "import tinydep; print(tinydep.VALUE)") == "42"
    attrs = docker_client.images.get(image).attrs["Config"]
    assert attrs["Labels"][TASK_LABEL] == str(task)
    assert not [e for e in attrs["Env"] if e.startswith(("PIP_", "SSL_", "REQUESTS_"))]
    assert (
        in_image(docker_client, image, "import os; print(os.listdir('/overnight/build'))") == "[]"
    )
    assert no_build_container_left(docker_client)

    code, out = night(task, "b", capsys)
    assert code == 0, out
    assert "building image" not in out and image_of_run(task, "b") == image

    (task / "pyproject.toml").write_text(pyproject.replace("tinydep>=1,<2", "tinydep>=2"))
    git(task, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qam", "tinydep 2")
    code, out = night(task, "c", capsys)
    assert code == 0, out
    newer = image_of_run(task, "c")
    assert newer != image and "building image" in out
    assert results(task, "c")[0].metric == 43
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(image)
    assert images_of(docker_client, task) == [docker_client.images.get(newer).id]


def test_a_requirements_txt_task_installs_through_https_with_the_machines_ca(
    tmp_path, capsys, docker_client, index, use_index, task_images, no_leftover_containers
):
    use_index(index.https, ca=index.ca)
    files = {
        "program.md": "x",
        "prepare.py": PREPARE + "import tinydep\n",
        "train.py": TRAIN,
        "requirements.txt": "-r deps/base.txt\n",
    }
    task = write_task(tmp_path / "task", files)
    (task / "deps").mkdir()
    (task / "deps" / "base.txt").write_text("tinydep==1.0\n")
    committed_repo(task)
    task_images.append(task)
    code, out = night(task, "a", capsys)
    assert code == 0, out
    assert [r.status.value for r in results(task, "a")] == ["keep", "keep"]
    image = image_of_run(task, "a")
    text = build_log(task, image)
    assert (
        f"Looking in indexes: {index.https}" in text
        and "Successfully installed tinydep-1.0" in text
    )
    assert in_image(docker_client, image, "import tinydep; print(tinydep.VALUE)") == "42"

    # Without the CA that signed the index, the same build fails, and says where to look.
    use_index(index.https, ca=Path("/etc/ssl/certs/ca-certificates.crt"))
    code, out = run_cli("image", "build", str(task), "--force", capsys=capsys)
    assert code == 2
    first = next(line for line in out.splitlines() if line.startswith("overnight: "))
    assert first.startswith(
        f"overnight: {task / 'requirements.txt'}: building the task's image failed"
    )
    assert "log: " in first and "CERTIFICATE_VERIFY_FAILED" in out
    assert docker_client.images.get(image)  # the image that works is kept
    assert no_build_container_left(docker_client)


def test_an_image_table_task_runs_and_a_failed_install_names_overnight_toml(
    tmp_path, capsys, docker_client, index, use_index, task_images, no_leftover_containers
):
    use_index(index.http, trusted=index.ip)
    files = {"program.md": "x", "prepare.py": PREPARE, "train.py": TRAIN}
    toml = '[image]\npip = ["tinydep"]\n'
    task = committed_repo(write_task(tmp_path / "task", {**files, "overnight.toml": toml}))
    task_images.append(task)
    code, out = night(task, "a", capsys)
    assert code == 0, out
    assert [(r.status.value, r.metric) for r in results(task, "a")] == [("keep", 43), ("keep", 44)]

    toml = '[image]\npip = ["tinydep>=9"]\n'
    broken = committed_repo(write_task(tmp_path / "broken", {**files, "overnight.toml": toml}))
    task_images.append(broken)
    code, out = night(broken, "a", capsys)
    assert code == 2
    lines = out.strip().splitlines()
    error = next(line for line in lines if line.startswith("overnight: "))
    assert error.startswith(
        f"overnight: {broken / 'overnight.toml'}: building the task's image failed at step 1, "
        "pip install (overnight.toml [image] pip)"
    )
    assert f"(log: {broken / '.overnight' / 'images'}" in error
    assert "No matching distribution found for tinydep>=9" in out
    assert images_of(docker_client, broken) == [] and not (broken / ".overnight" / "a").exists()
    assert no_build_container_left(docker_client)


def test_validate_and_doctor_name_each_missing_import_with_the_setting_to_add(
    tmp_path, capsys, docker_client, no_leftover_containers
):
    files = {
        "program.md": "x",
        "prepare.py": PREPARE + "import os\nimport requests\n",
        "train.py": "import numpy\nimport torch\ntry:\n    import tqdm\nexcept ImportError:\n"
        "    tqdm = None\nprint('score: 1')\n",
    }
    task = committed_repo(write_task(tmp_path / "task", files))
    fix = "add {0} to requirements.txt, pyproject.toml [project].dependencies or [image] pip = "
    fix += '["{0}"] in overnight.toml'
    for command in ("validate", "doctor"):
        code, out = run_cli(command, str(task), capsys=capsys)
        assert code == 2, out
        assert (
            f"problem: {task / 'prepare.py'} imports requests, which image {DEFAULT_IMAGE} "
            f"lacks: {fix.format('requests')}"
        ) in out
        assert (
            f"problem: {task / 'train.py'} imports torch, which image {DEFAULT_IMAGE} lacks: "
            f"{fix.format('torch')}"
        ) in out
        assert out.count("problem:") == 2  # tqdm is optional: a note, not a problem
        assert "train.py imports tqdm only if it is there" in out

    code, out = run_cli("run", str(task), "--tag", "t", capsys=capsys)
    assert code == 2
    assert f"{task / 'train.py'} imports torch, which image {DEFAULT_IMAGE} lacks" in out
    assert not (task / ".overnight" / "t").exists()

    (task / "train.py").write_text("import numpy\nprint('score: 1')\n")
    (task / "prepare.py").write_text(PREPARE + "import json\n")
    git(task, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qam", "stdlib only")
    code, out = run_cli("validate", str(task), capsys=capsys)
    assert code == 0, out
    assert f"imports: json, numpy: all in {DEFAULT_IMAGE}" in out and "ok: ready to run" in out
    code, out = run_cli("doctor", str(task), capsys=capsys)
    assert code == 0 and out.strip().endswith("ready"), out


def test_validate_says_what_an_unbuilt_image_would_be_built_from_and_builds_nothing(
    tmp_path, capsys, docker_client
):
    pyproject = (
        '[project]\nname = "x"\nversion = "0"\ndependencies = ["torch==2.9.1", "numpy>=2"]\n'
        '[tool.uv.sources]\ntorch = [{ index = "pytorch-cu128" }]\n'
        '[[tool.uv.index]]\nname = "pytorch-cu128"\nurl = "https://download.pytorch.org/whl/cu128"\n'
        "explicit = true\n"
    )
    files = {"program.md": "x", "prepare.py": PREPARE, "train.py": "import torch\n"}
    task = committed_repo(write_task(tmp_path / "task", {**files, "pyproject.toml": pyproject}))
    code, out = run_cli("validate", str(task), capsys=capsys)
    assert code == 0, out
    assert (
        "dependencies: pyproject.toml: torch==2.9.1 (from index https://download.pytorch.org/whl/cu128)"
        in out
    )
    assert "dependencies: pyproject.toml: numpy>=2" in out
    assert "is not built yet; the first run builds it (or `overnight image build" in out
    assert images_of(docker_client, task) == [] and not (task / ".overnight").exists()


def test_the_base_image_has_pip_for_a_task_dockerfile_and_a_new_dockerfile_replaces_the_old(
    tmp_path, capsys, docker_client, task_images, no_leftover_containers
):
    dockerfile = (
        f"FROM {DEFAULT_IMAGE}\nCOPY tinydep-1.0-py3-none-any.whl /wheels/\n"
        "RUN pip install --no-index /wheels/*.whl\n"
        "COPY . /context\nRUN test ! -e /context/.overnight && test ! -e /context/.git\n"
    )
    files = {"program.md": "x", "prepare.py": PREPARE, "train.py": TRAIN, "Dockerfile": dockerfile}
    task = write_task(tmp_path / "task", files)
    build_wheel(task, "tinydep", "1.0", 42)
    committed_repo(task)
    task_images.append(task)
    code, out = night(task, "a", capsys)
    assert code == 0, out
    assert [(r.status.value, r.metric) for r in results(task, "a")] == [("keep", 42), ("keep", 43)]
    image = image_of_run(task, "a")
    assert "Successfully installed tinydep-1.0" in build_log(task, image)

    (task / "Dockerfile").write_text(dockerfile + "LABEL second=1\n")
    code, out = night(task, "b", capsys)
    assert code == 0, out
    newer = image_of_run(task, "b")
    assert newer != image
    assert images_of(docker_client, task) == [docker_client.images.get(newer).id]
