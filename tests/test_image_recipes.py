"""The pure parts of task images, as tables: imports read from the syntax tree, what a task
declares turned into install commands, this machine's pip settings, and clean build logs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.config import ImageConfig
from harness.dependencies import task_recipe
from harness.errors import TaskError
from harness.imports import file_imports, task_imports
from sandbox.build_log import BuildLog, clean_line
from sandbox.host_pip import BUILD_DIR, CA_FILE, host_pip
from sandbox.task_image import PIP, PipInstall, Recipe, build_script, build_steps


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import numpy\n", [("numpy", False)]),
        ("import numpy.linalg as la, os\n", [("numpy", False), ("os", False)]),
        ("from torch.nn import functional\n", [("torch", False)]),
        ("from . import helpers\nfrom .x import y\n", []),
        ("if True:\n    import yaml\nelse:\n    import json\n", [("yaml", False), ("json", False)]),
        ("try:\n    import tqdm\nexcept ImportError:\n    tqdm = None\n", [("tqdm", True)]),
        (
            "try:\n    import a\nexcept (ValueError, ModuleNotFoundError):\n    pass\n",
            [("a", True)],
        ),
        ("try:\n    import a\nexcept ValueError:\n    import b\n", [("a", False), ("b", False)]),
        (
            "try:\n    import a\nexcept:\n    pass\nfinally:\n    import c\n",
            [("a", True), ("c", False)],
        ),
        ("def f():\n    import inside_a_function\n", []),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import hints\n",
            [("typing", False)],
        ),
        (
            "with open('x'):\n    import w\nfor i in []:\n    import f\n",
            [("w", False), ("f", False)],
        ),
        ("class C:\n    import in_class_body\n", [("in_class_body", False)]),
        ("if __name__ == '__main__':\n    import torch\n", [("torch", False)]),
    ],
)
def test_load_time_imports_are_read_from_the_syntax_tree(source, expected):
    found = [(i.module, i.optional) for i in file_imports("train.py", source)]
    assert found == expected


def test_the_task_folders_own_modules_and_the_harness_are_not_dependencies(tmp_path):
    (tmp_path / "helpers.py").write_text("")
    (tmp_path / "mylib").mkdir()
    sources = {
        "prepare.py": "import requests\nimport helpers\nimport overnight_eval\n",
        "train.py": "import prepare\nfrom mylib import x\nimport torch\n"
        "try:\n    import requests\nexcept ImportError:\n    pass\n",
    }
    found = {(i.module, i.file, i.optional) for i in task_imports(tmp_path, sources)}
    # requests is required by prepare.py even though train.py copes without it
    assert found == {("requests", "prepare.py", False), ("torch", "train.py", False)}


@pytest.mark.parametrize(
    ("module", "package"),
    [("sklearn", "scikit-learn"), ("cv2", "opencv-python"), ("torch", "torch")],
)
def test_an_import_name_maps_to_the_package_to_install(module, package):
    (item,) = file_imports("train.py", f"import {module}\n")
    assert item.package == package


PYPROJECT_UV = """
[project]
name = "autoresearch"
version = "0.1.0"
dependencies = ["numpy>=2", "torch==2.9.1", "kernels>=0.11 ; python_version >= '3.10'"]

[project.optional-dependencies]
dev = ["pytest"]

[tool.uv]
dev-dependencies = ["ruff"]

[tool.uv.sources]
torch = [{ index = "pytorch-cu128", marker = "sys_platform == 'linux'" }]
kernels = { git = "https://example.org/kernels.git", tag = "v1" }

[[tool.uv.index]]
name = "pytorch-cu128"
url = "https://download.pytorch.org/whl/cu128"
explicit = true
"""


def test_a_uv_pyproject_becomes_pip_installs_with_the_pinned_index_as_extra_index(tmp_path):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT_UV)
    recipe = task_recipe(tmp_path, ImageConfig())
    torch, main = recipe.pip
    assert torch.command() == [
        *PIP,
        "torch==2.9.1 ; sys_platform == 'linux'",
        "--extra-index-url",
        "https://download.pytorch.org/whl/cu128",
    ]
    assert main.command() == [
        *PIP,
        "numpy>=2",
        "kernels @ git+https://example.org/kernels.git@v1 ; python_version >= '3.10'",
    ]
    # optional, dev and uv dev dependencies are not the task's; the project itself never is
    assert "pytest" not in str(recipe) and "ruff" not in str(recipe)
    assert "." not in main.requirements
    assert "pyproject.toml: torch==2.9.1 ; sys_platform == 'linux' (from index " in "\n".join(
        recipe.declared
    )


def test_requirements_txt_is_given_as_the_file_and_its_includes_are_hashed(tmp_path):
    (tmp_path / "requirements.txt").write_text("-r deps/base.txt\ntinydep  # the package\n")
    (tmp_path / "deps").mkdir()
    (tmp_path / "deps" / "base.txt").write_text("six\n")
    image = ImageConfig(pip=("extra>=1",), packages=("python3-requests",))
    recipe = task_recipe(tmp_path, image)
    (main,) = recipe.pip
    assert main.command() == [*PIP, "extra>=1", "-r", "requirements.txt"]
    assert main.sources == ("requirements.txt", "overnight.toml [image] pip")
    assert [name for name, _ in recipe.inputs] == ["deps/base.txt", "requirements.txt"]
    before = recipe.digest("sha256:base", tmp_path)
    (tmp_path / "deps" / "base.txt").write_text("six==1.16\n")
    assert task_recipe(tmp_path, image).digest("sha256:base", tmp_path) != before
    assert recipe.digest("sha256:other-base", tmp_path) != before


@pytest.mark.parametrize(
    ("pyproject", "message"),
    [
        ("[project\n", "pyproject.toml: not valid TOML"),
        ('[project]\ndependencies = "numpy"\n', "must be a list of requirement strings"),
        (
            '[project]\ndependencies = ["torch"]\n[tool.uv.sources]\ntorch = { index = "gone" }\n',
            "no [[tool.uv.index]] is named 'gone'; add it",
        ),
        (
            '[project]\ndependencies = ["lib"]\n[tool.uv.sources]\nlib = { workspace = true }\n',
            "overnight installs index, url, git and path sources only",
        ),
    ],
)
def test_a_pyproject_overnight_cannot_read_is_one_line_naming_it(tmp_path, pyproject, message):
    (tmp_path / "pyproject.toml").write_text(pyproject)
    with pytest.raises(TaskError) as caught:
        task_recipe(tmp_path, ImageConfig())
    assert message in str(caught.value) and str(tmp_path / "pyproject.toml") in str(caught.value)
    assert "\n" not in str(caught.value)


def test_debian_packages_are_installed_with_apt_from_the_image_sources_and_lists_removed():
    steps = build_steps(Recipe(packages=("python3-requests", "libgomp1")), ca=True)
    apt = ("apt-get", "-o", f"Acquire::https::CAInfo={CA_FILE}")
    assert steps[0].commands == (
        (*apt, "-qq", "update"),
        (*apt, "-qq", "install", "-y", "--no-install-recommends", "python3-requests", "libgomp1"),
        ("apt-get", "clean"),
        ("find", "/var/lib/apt/lists", "-mindepth", "1", "-delete"),
    )
    assert steps[0].sources == ("overnight.toml",)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ({"packages": ["Python3 Requests"]}, "is not a Debian package name"),
        ({"pip": ["--index-url=http://x"]}, "pip options are not allowed here"),
        ({"pip": ["x"], "apt": ["y"]}, "Extra inputs are not permitted"),
    ],
)
def test_the_image_table_is_strict(toml, message):
    with pytest.raises(ValueError, match=message):
        ImageConfig.model_validate(toml)


def test_the_host_pip_settings_come_from_its_files_then_its_variables(tmp_path):
    home = tmp_path / "home"
    (home / ".config" / "pip").mkdir(parents=True)
    (home / ".config" / "pip" / "pip.conf").write_text(
        "[global]\nindex-url = https://user:secret@mirror.example/simple\ntimeout = 30\n"
        "[install]\ntrusted-host = mirror.example\nbreak-system-packages = false\n"
    )
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    links = tmp_path / "wheels"
    links.mkdir()
    env = {
        "PIP_EXTRA_INDEX_URL": "https://extra.example/simple",
        "PIP_DEFAULT_TIMEOUT": "99",
        "PIP_FIND_LINKS": f"{links} /does/not/exist https://links.example/",
        "SSL_CERT_FILE": str(ca),
        "UV_EXTRA_INDEX_URL": "https://uv.example/simple",
        "https_proxy": "http://proxy.example:3128",
    }
    host = host_pip(env, home, etc=tmp_path / "etc")
    assert host.options == {
        "index-url": "https://user:secret@mirror.example/simple",
        "timeout": "30",
    }
    assert host.extra_index_urls == ("https://extra.example/simple", "https://uv.example/simple")
    assert host.trusted_hosts == ("mirror.example",)
    assert host.find_links == (str(links), "https://links.example/")
    assert host.ca_bundle == ca
    assert host.proxies == {"HTTPS_PROXY": "http://proxy.example:3128"}
    conf = host.pip_conf()
    assert f"cert = {CA_FILE}" in conf and "find-links = /overnight/links/0\n" in conf
    assert "break-system-packages" not in conf  # only index settings cross over
    assert "secret" not in host.describe() and "***@mirror.example" in host.describe()
    script = build_script([], host)
    assert f"export PIP_CONFIG_FILE={BUILD_DIR}/pip.conf" in script
    assert "export https_proxy=http://proxy.example:3128" in script


def test_pip_variables_win_over_files_and_uv_is_the_fallback_index(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "pip.conf").write_text("[global]\ncert = /nowhere.pem\ntimeout = 5\n")
    config = tmp_path / "own.conf"
    config.write_text("[global]\nindex-url = https://file.example/simple\n")
    env = {"PIP_CONFIG_FILE": str(config), "UV_DEFAULT_INDEX": "https://uv.example/simple"}
    host = host_pip(env, tmp_path, etc)
    assert host.options == {"index-url": "https://file.example/simple", "timeout": "5"}
    env["PIP_INDEX_URL"] = "https://env.example/simple"
    assert host_pip(env, tmp_path, etc).options["index-url"] == "https://env.example/simple"
    uv_only = host_pip({"UV_INDEX_URL": "https://uv.example/simple"}, tmp_path, etc)
    assert uv_only.options["index-url"] == "https://uv.example/simple"
    assert uv_only.ca_bundle != Path("/nowhere.pem")  # a CA file that is not there is skipped


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\x1b[1;32mok\x1b[0m", "ok"),
        ("  10%|#   \r  50%|#####  \r 100%|########## done", " 100%|########## done"),
        ("line\r", "line"),
        ("\x1b]0;title\x07text\x08", "text"),
    ],
)
def test_a_build_log_line_is_what_a_terminal_would_show_without_escapes(raw, clean):
    assert clean_line(raw) == clean


def test_a_build_log_joins_chunks_split_mid_line(tmp_path):
    with BuildLog(tmp_path / "b.log") as log:
        log.write(b"Downloading 1\r")
        log.write(b"Downloading 2\nSucc")
        log.write("essfully installed\n\x1b[0mlast")
    assert (tmp_path / "b.log").read_text() == textwrap.dedent(
        """\
        Downloading 2
        Successfully installed
        last
        """
    )


def test_pip_installs_pinned_to_an_index_come_first_and_name_their_source():
    recipe = Recipe(
        pip=(
            PipInstall(("torch",), (), "https://idx.example/simple", ("pyproject.toml",)),
            PipInstall(("numpy",), ("requirements.txt",), None, ("requirements.txt",)),
        )
    )
    steps = build_steps(recipe, ca=False)
    assert [s.title for s in steps] == [
        "pip install (pyproject.toml) from https://idx.example/simple",
        "pip install (requirements.txt)",
    ]
