"""Shared fixtures: CPU only, few threads, everything under tmp_path."""

from __future__ import annotations

import http.server
import os
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# `precision: auto` caches its per-machine probes: one cache for the whole session (the
# workflow runs in subprocesses inherit it), never the user's ~/.cache.
os.environ.setdefault("MNISTBENCH_CACHE_DIR", tempfile.mkdtemp(prefix="mnistbench-cache-"))
# Hypothesis keeps its examples and caches there too, not in .hypothesis/ of the checkout.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", tempfile.mkdtemp(prefix="hypothesis-"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--order",
        default="file",
        help="run the tests in file order (default), 'reverse', or 'random' or 'random:SEED' "
        "(modules shuffled, then the tests within each): every module must pass in any order",
    )


def pytest_configure(config: pytest.Config) -> None:
    worker = getattr(config, "workerinput", None)
    if worker is not None:  # a pytest-xdist worker: the controller's order, as all must collect
        config.option.order = worker["order"]  # the same tests in the same order
    elif config.getoption("order") == "random":  # a seed, printed at the end, to rerun the order
        config.option.order = f"random:{random.randrange(10**6)}"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # type: ignore[no-untyped-def]
    """pytest-xdist: each worker gets the controller's ``--order`` (with its seed)."""
    node.workerinput["order"] = node.config.getoption("order")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--order``: the modules in reverse or random order, and the tests within each likewise
    (but in a module whose ``IN_ORDER`` says why it cannot); a module's tests stay together, so
    its module fixtures are set up once."""
    order = config.getoption("order")
    if order == "file":
        return
    kind, _, seed = order.partition(":")
    if kind not in ("reverse", "random"):
        raise pytest.UsageError(f"--order {order}: give file, reverse, random or random:SEED")
    rng = random.Random(int(seed or 0))
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    groups = list(modules.values())
    # a module that says why its tests must keep their order (IN_ORDER) is moved whole
    shuffled = [g for g in groups if not getattr(g[0].module, "IN_ORDER", None)]
    for group in [groups, *shuffled]:
        if kind == "reverse":
            group.reverse()
        else:
            rng.shuffle(group)
    items[:] = [item for group in groups for item in group]


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    if config.getoption("order") != "file":  # even with -q: how to run this order again
        terminalreporter.write_line(f"test order: --order {config.getoption('order')}")


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


def model_settings(model: str = "lenet5", **train: object) -> dict:
    """One model's resolved settings from config/config.yaml, ``train`` keys overridden."""
    from mnistbench.config.load import deep_merge, load_config, resolve_model, validate_config

    config = load_config(ROOT / "config/config.yaml")
    # a few steps on tiny data learn little: no run here is failed for scoring like chance
    config["train"] = deep_merge({**config["train"], "require_learning": False}, train)
    return resolve_model(validate_config(config), model)


def classifier(model: str = "lenet5", **train: object):  # type: ignore[no-untyped-def]
    """A fresh Classifier for one model of config/config.yaml (MNIST's pixel statistics)."""
    from mnistbench.train.recipe import make_classifier

    stats = {"train": {"pixel_mean": 0.1307, "pixel_std": 0.3081}}
    return make_classifier(model_settings(model, **train), stats)


def copy_project(dest: Path) -> Path:
    """A copy of the workflow (not data/ or results/) to run Snakemake or DVC in isolation.

    The .gitignore comes along (outputs stay untracked, as DVC needs), and so do DVC's project
    files (dvc.yaml, .dvcignore, .dvc/ without its cache, tmp and local config); dvc.lock does
    not, so a copy starts with nothing run."""
    names = ("Snakefile", "workflow", "config", "src", "envs", ".gitignore")
    names += ("dvc.yaml", ".dvcignore", ".dvc")
    for name in names:
        src = ROOT / name
        if src.is_dir():
            skip = ("cache", "tmp", "config.local") if name == ".dvc" else ()
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", *skip))
        else:
            shutil.copy2(src, dest / name)
    return dest


@contextmanager
def serve_synthetic_dataset(
    handler: type[http.server.BaseHTTPRequestHandler],
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
    dataset: str = "mnist",
) -> Iterator[str]:
    """A mirror on 127.0.0.1 serving small generated files of a registered data set, laid out as
    it publishes them (their md5s become the official ones), through ``handler``, whose class
    attributes ``files`` (name -> bytes) and ``hits`` (a Counter its routes fill) are set here.
    Yields the base URL."""
    from tests.mirror import published_files, serve, use_md5s

    files = published_files(dataset, seed)
    use_md5s(monkeypatch, dataset, files)
    monkeypatch.setattr(handler, "files", files, raising=False)
    monkeypatch.setattr(handler, "hits", Counter(), raising=False)
    with serve(handler) as url:
        yield url
