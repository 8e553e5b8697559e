"""Data sets by name (src/mnistbench/data/registry.py), offline: generated files laid out as each
data set publishes them, served by a local mirror with their md5s as the official ones
(tests/mirror.py). The units first; then the whole workflow on Fashion-MNIST and EMNIST letters
(through its zip) in one run, with the summary across data sets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mnistbench.data.download import download_dataset
from mnistbench.data.idx import read_idx
from mnistbench.data.local import copy_local
from mnistbench.data.manifest import MANIFEST_NAME
from mnistbench.data.registry import RAW_NAMES, REGISTRY, layout
from mnistbench.data.synthetic import derived_test_seed, make_digits, write_synthetic
from mnistbench.errors import ConfigError, DataError
from mnistbench.io import read_json
from mnistbench.reporting.datasets import summarize_datasets
from tests.mirror import StaticMirror, patch_source_md5s, published_files, serve, use_md5s

# one attempt per file, no wait (a local mirror): the config's data.download_* for these tests
ONCE = {"retries": 1, "timeout": 60, "backoff": 0}


def _validated(**over: object) -> dict:
    """config/config.yaml with ``over`` merged over it, validated."""
    from mnistbench.config.load import deep_merge, load_config, validate_config
    from tests.conftest import ROOT

    return validate_config(deep_merge(load_config(ROOT / "config/config.yaml"), over))


# ------------------------------------------------------------------------------- the registry


def test_registry_sizes_and_class_names() -> None:
    expected = {
        "mnist": 10,
        "fashion_mnist": 10,
        "kmnist": 10,
        "emnist_balanced": 47,
        "emnist_letters": 26,
    }
    assert {name: ds.num_classes for name, ds in REGISTRY.items()} == expected
    for ds in REGISTRY.values():
        assert len(set(ds.classes)) == ds.num_classes and ds.mirrors
        assert ds.archive is not None or set(ds.files) == set(RAW_NAMES)
    assert REGISTRY["fashion_mnist"].classes[0] == "T-shirt/top"
    # EMNIST balanced: torchvision's order; its 15 merged lower-case letters are absent
    balanced = REGISTRY["emnist_balanced"].classes
    assert balanced[:12] == tuple("0123456789AB") and balanced[-1] == "t" and "c" not in balanced
    assert REGISTRY["emnist_letters"].archive.label_offset == 1


def test_an_unregistered_name_to_download_is_refused_with_the_registered_ones() -> None:
    with pytest.raises(ConfigError) as info:
        _validated(dataset="fashion_mnsit")
    msg = str(info.value)
    assert "did you mean 'fashion_mnist'" in msg and "emnist_letters" in msg
    assert "data.local_dir" in msg
    # the same name with generated data is fine (MNIST's layout, ten digits)
    config = _validated(dataset="fashion_mnsit", data={"source": "synthetic", "val_size": 500})
    assert config["dataset"] == "fashion_mnsit"


def test_a_local_dir_of_no_data_set_of_the_run_is_refused() -> None:
    local = {"mnist": "/x", "kmist": "/y"}
    with pytest.raises(ConfigError, match=r"data.local_dir.kmist.*did you mean 'kmnist'"):
        _validated(datasets=["mnist", "kmnist"], data={"local_dir": local})


def test_num_classes_is_not_a_model_kwarg() -> None:
    with pytest.raises(ConfigError, match="models.cnn.model_kwargs.num_classes"):
        _validated(models={"cnn": {"model_kwargs": {"num_classes": 26}}})


# ----------------------------------------------------------------- generated data, more classes


@pytest.mark.parametrize("k", [26, 47])
def test_generated_data_of_more_classes_is_balanced_and_tells_them_apart(k: int) -> None:
    images, labels = make_digits(20 * k, seed=1, num_classes=k)
    assert images.shape == (20 * k, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=k).tolist() == [20] * k
    means = np.stack([images[labels == c].mean(0) for c in range(k)])
    # class c + 10 is digit c with a mark: its mean image differs from digit c's
    for c in range(k - 10):
        assert np.abs(means[c + 10] - means[c]).max() > 60, c


def test_generated_data_takes_a_registered_data_sets_classes(tmp_path: Path) -> None:
    manifest = write_synthetic(tmp_path, 94, 47, seed=0, dataset="emnist_balanced")
    assert manifest["classes"] == list(REGISTRY["emnist_balanced"].classes)
    labels = read_idx(tmp_path / RAW_NAMES["train_labels"])
    assert labels.max() == 46 and manifest["source"] == "synthetic"


# ------------------------------------------------------------ downloads through a local mirror


def _mirror(dataset: str, files: dict[str, bytes]) -> type[StaticMirror]:
    served = {f"{dataset}/{name}": body for name, body in files.items()}
    return type("Mirror", (StaticMirror,), {"files": served})


def test_fashion_mnist_downloads_and_checks_its_own_md5s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = published_files("fashion_mnist", seed=2)
    use_md5s(monkeypatch, "fashion_mnist", files)
    with serve(_mirror("fashion_mnist", files)) as url:
        ds = layout("fashion_mnist")
        manifest = download_dataset(tmp_path / "raw", [f"{url}/{{dataset}}/"], **ONCE, ds=ds)
        assert manifest["origin"] == f"{url}/fashion_mnist/"
        assert manifest["classes"][0] == "T-shirt/top"
        assert all(f["official_md5"] for f in manifest["files"].values())
        # other files under the same names (e.g. MNIST's) are refused by name
        mnist = published_files("mnist", seed=3)
        with serve(_mirror("fashion_mnist", mnist)) as other, pytest.raises(DataError) as info:
            download_dataset(
                tmp_path / "raw2", [f"{other}/{{dataset}}/"], **ONCE, ds=layout("fashion_mnist"),
            )  # fmt: skip
    assert "does not match the official" in str(info.value)


def test_emnist_comes_out_of_its_zip_upright_and_counted_from_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = published_files("emnist_letters", seed=4, n_train=52, n_test=26)
    use_md5s(monkeypatch, "emnist_letters", files)
    ds = layout("emnist_letters")
    out = tmp_path / "raw"
    with serve(_mirror("emnist_letters", files)) as url:
        manifest = download_dataset(out, [f"{url}/{{dataset}}/"], **ONCE, ds=ds)
        again = download_dataset(out, ["http://127.0.0.1:1/"], **ONCE, ds=ds)
    assert again["origin"] == manifest["origin"]  # the zip verified by md5: not fetched again
    train_x, train_y = make_digits(52, 4, 26)
    test_x, test_y = make_digits(26, derived_test_seed(4), 26)
    for key, expected in (
        ("train_images", train_x), ("train_labels", train_y),
        ("test_images", test_x), ("test_labels", test_y),
    ):  # fmt: skip
        assert np.array_equal(read_idx(out / RAW_NAMES[key]), expected), key
    assert manifest["archive"] == {"name": "gzip.zip", "md5": ds.archive.md5, "official_md5": True}
    assert manifest["classes"] == list("abcdefghijklmnopqrstuvwxyz")
    assert manifest == read_json(out / MANIFEST_NAME)


def test_a_zip_with_another_md5_is_refused_and_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = published_files("emnist_balanced", seed=4)
    with serve(_mirror("emnist_balanced", files)) as url, pytest.raises(DataError) as info:
        download_dataset(
            tmp_path / "raw", [f"{url}/{{dataset}}/"], retries=2, timeout=60, backoff=0,
            ds=layout("emnist_balanced"),
        )  # fmt: skip
    assert "gzip.zip" in str(info.value) and "does not match the official" in str(info.value)
    assert not (tmp_path / "raw/gzip.zip").exists()


def test_local_dir_takes_the_emnist_zip_or_its_files(tmp_path: Path) -> None:
    files = published_files("emnist_letters", seed=6)
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    (zipped / "gzip.zip").write_bytes(files["gzip.zip"])
    from_zip = copy_local(zipped, tmp_path / "a", layout("emnist_letters"))
    assert from_zip["source"] == "local" and len(from_zip["classes"]) == 26
    # the split's four files as the zip holds them (gzip/ folder), one of them uncompressed
    import zipfile

    with zipfile.ZipFile(zipped / "gzip.zip") as zf:
        zf.extractall(tmp_path / "unzipped")
    one = tmp_path / "unzipped/gzip/emnist-letters-test-labels-idx1-ubyte.gz"
    write_plain = one.with_name(one.name.removesuffix(".gz"))
    import gzip

    write_plain.write_bytes(gzip.decompress(one.read_bytes()))
    one.unlink()
    from_files = copy_local(tmp_path / "unzipped", tmp_path / "b", layout("emnist_letters"))
    for key in RAW_NAMES:
        assert from_files["files"][key]["sha256"] == from_zip["files"][key]["sha256"], key
    with pytest.raises(DataError, match="missing emnist-letters-train-images-idx3-ubyte.gz"):
        copy_local(tmp_path / "b", tmp_path / "c", layout("emnist_letters"))


def test_labels_beyond_the_data_sets_classes_name_the_file(tmp_path: Path) -> None:
    """47-class labels in a directory given as Fashion-MNIST (10 classes)."""
    write_synthetic(tmp_path / "src", 94, 47, seed=0, dataset="emnist_balanced")
    with pytest.raises(DataError) as info:
        copy_local(tmp_path / "src", tmp_path / "raw", layout("fashion_mnist"))
    msg = str(info.value)
    assert "train-labels-idx1-ubyte.gz" in msg and "labels must be 0..9" in msg
    assert "10 classes" in msg and "data.local_dir" in msg


# ---------------------------------------------------------------- the summary across data sets


def test_summary_across_data_sets(tmp_path: Path) -> None:
    rows = {
        "mnist": [("cnn", 0.99, 0.985, 0.994), ("lenet5", 0.98, 0.975, 0.985)],
        "fashion_mnist": [("lenet5", 0.90, 0.89, 0.91), ("cnn", 0.92, 0.91, 0.93)],
    }
    tables = {}
    for ds, runs in rows.items():
        tables[ds] = tmp_path / f"{ds}.csv"
        pd.DataFrame(
            [{"model": m, "test_f1": f, "ci_low": lo, "ci_high": hi, "status": "ok"}
             for m, f, lo, hi in runs]
        ).to_csv(tables[ds], index=False)  # fmt: skip
    out = {"csv": tmp_path / "datasets.csv", "md": tmp_path / "datasets.md"}
    summarize_datasets(tables, out)
    md = out["md"].read_text()
    assert "| model   | MNIST" in md and "Fashion-MNIST" in md
    lines = [line for line in md.splitlines() if line.startswith("| cnn") or "lenet5" in line]
    assert lines[0].startswith("| cnn") and "0.9900 [0.9850, 0.9940]" in lines[0]
    assert "0.9000 [0.8900, 0.9100]" in lines[1]
    long = list(csv.DictReader(out["csv"].open()))
    assert len(long) == 4 and {r["dataset"] for r in long} == set(rows)
    tables["kmnist"] = tmp_path / "kmnist.csv"
    with pytest.raises(DataError, match="kmnist.csv: missing; run the report of data set"):
        summarize_datasets(tables, out)


def test_adding_a_data_set_changes_nothing_of_those_already_run(tmp_path: Path) -> None:
    """The stages of mnist alone and of mnist among several: the same params, code, data and
    outputs (what Snakemake and DVC rerun on); only the commands name the data set."""
    from mnistbench.config.load import deep_merge, load_config
    from mnistbench.pipeline.dvc import dvc_yaml
    from mnistbench.pipeline.table import stages
    from tests.conftest import ROOT

    files = [str(ROOT / "config/config.yaml")]
    raw = load_config(*files)
    alone = {(s.rule, s.run): s for s in stages(_validated(), raw, files)}
    several = ["mnist", "kmnist"]
    raw2 = deep_merge(raw, {"datasets": several})
    both = {
        (s.rule, s.dataset, s.run): s for s in stages(_validated(datasets=several), raw2, files)
    }
    assert len(both) == 2 * len(alone) + 1
    for (rule, run), s in alone.items():
        t = both[(rule, "mnist", run)]
        assert (t.params, t.code, t.deps, t.outs) == (s.params, s.code, s.deps, s.outs), rule
    train = both[("train_model", "kmnist", "cnn")]
    assert '"dataset":"kmnist"' in train.command() and train.params["dataset"] == "kmnist"
    assert train.deps["prepare_train"] == ["data/kmnist/prepared/train.pt"]
    summary = both[("summarize_datasets", None, None)]
    assert summary.deps == {"report_csv": [f"results/{d}/comparison.csv" for d in several]}
    assert summary.outs == {"csv": "results/datasets.csv", "md": "results/datasets.md"}
    # DVC: one data set per dvc.yaml
    overlay = tmp_path / "several.yaml"
    overlay.write_text(yaml.safe_dump({"datasets": several}))
    with pytest.raises(ConfigError, match="dvc.yaml describes one data set"):
        dvc_yaml([files[0], str(overlay)])


# ------------------------------------------------- end to end: two data sets through the mirror


@pytest.mark.slow
def test_fashion_mnist_and_emnist_letters_run_end_to_end_offline(
    tmp_path: Path,
) -> None:
    """download -> prepare -> train -> evaluate -> report on each, then the summary, with the
    files served by a local mirror under their published names (EMNIST: its zip), their md5s
    written into the copy's registry."""
    from tests.test_faults_workflow import MODELS, snakemake, tiny_project

    proj = tiny_project(tmp_path)
    served: dict[str, bytes] = {}
    for name in ("fashion_mnist", "emnist_letters"):
        files = published_files(name, seed=7, n_train=260, n_test=130)
        patch_source_md5s(proj / "src/mnistbench/data/registry.py", name, files)
        served.update({f"{name}/{file}": body for file, body in files.items()})
    cfg = yaml.safe_load((proj / "config/config.yaml").read_text())
    cfg["datasets"] = ["fashion_mnist", "emnist_letters"]
    cfg["data"]["source"] = "official"
    cfg["data"]["val_size"] = 52
    cfg["report"] = {**cfg.get("report", {}), "bootstrap_resamples": 200}
    with serve(type("Mirror", (StaticMirror,), {"files": served})) as url:
        cfg["data"]["mirrors"] = [f"{url}/{{dataset}}/"]
        (proj / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        snakemake(proj)

    for name, k in (("fashion_mnist", 10), ("emnist_letters", 26)):
        ds = REGISTRY[name]
        manifest = read_json(proj / f"data/{name}/raw/manifest.json")
        assert manifest["source"] == "download" and manifest["origin"] == f"{url}/{name}/"
        assert manifest["dataset"] == name and len(manifest["classes"]) == k
        table = pd.read_csv(proj / f"results/{name}/comparison.csv")
        assert set(table["model"]) == set(MODELS) and (table["status"] == "ok").all()
        for model in MODELS:
            test = proj / f"results/{name}/models/{model}/test"
            details = json.loads((test / "details.json").read_text())
            assert details["classes"] == list(ds.classes) and len(details["f1_per_class"]) == k
            header = (test / "confusion.csv").read_text().splitlines()[0].split(",")
            assert header[1:] == list(ds.classes)
            with np.load(test / "predictions.npz") as pred:
                assert pred["proba"].shape == (130, k)
        assert (proj / f"results/{name}/figures/misclassified.png").stat().st_size > 1000
    md = (proj / "results/datasets.md").read_text()
    assert "Fashion-MNIST" in md and "EMNIST letters" in md
    for model in MODELS:
        row = next(line for line in md.splitlines() if line.startswith(f"| {model} "))
        assert row.count(" [") == 2, row  # an F1 with its interval on each data set
    long = pd.read_csv(proj / "results/datasets.csv")
    assert len(long) == 2 * len(MODELS) and long["ci_low"].notna().all()
    # the HTML report: the summary, then each data set's comparison, on its front page
    snakemake(proj, "--report", "report.html")
    html = (proj / "report.html").read_text()
    assert "Test macro-F1 of each model on each data set" in html and "System Message" not in html
    assert "What each run scored on fashion_mnist" in html
    assert "What each run cost on emnist_letters" in html
