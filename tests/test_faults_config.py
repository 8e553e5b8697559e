"""Config mistakes are rejected before any job runs, naming the key path and the fix."""

from __future__ import annotations

import copy

import pytest

from mnistbench.config.load import load_config, resolve_model, validate_config
from mnistbench.errors import ConfigError


@pytest.fixture()
def default(project_root):
    return load_config(project_root / "config" / "config.yaml")


def _error(config) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    return str(info.value)


@pytest.mark.parametrize(
    ("mutate", "needles"),
    [
        # typos: the key path, and the closest valid key
        (lambda c: c.update(trian={}), ["trian", "did you mean 'train'"]),
        (lambda c: c["train"].update(max_epoch=3), ["train.max_epoch", "'max_epochs'"]),
        (lambda c: c["data"].update(local_dri="x"), ["data.local_dri", "'local_dir'"]),
        (
            lambda c: c["models"].update(cnn={"train": {"optimzer": {}}}),
            ["models.cnn.train.optimzer", "'optimizer'"],
        ),
        (lambda c: c["models"].update(cnn={"archh": "cnn"}), ["models.cnn.archh", "'arch'"]),
        # unknown model / architecture
        (lambda c: c["models"].update(lenett5={}), ["models.lenett5", "'lenet5'", "available"]),
        (lambda c: c["models"].update(big={"arch": "vgg"}), ["models.big", "'vgg'"]),
        # wrong types
        (lambda c: c["train"].update(max_epochs="ten"), ["train.max_epochs", "integer"]),
        (lambda c: c["data"].update(mirrors="http://x/"), ["data.mirrors", "array"]),
        (lambda c: c["train"]["swa"].update(enabled="yes"), ["train.swa.enabled", "boolean"]),
        # out of range
        (lambda c: c["train"].update(max_epochs=-1), ["train.max_epochs", "minimum"]),
        (lambda c: c["train"]["optimizer"].update(lr=0), ["train.optimizer.lr", "0"]),
        (
            lambda c: c["models"].update(cnn={"train": {"optimizer": {"lr": -1}}}),
            ["models.cnn.train.optimizer.lr"],
        ),
        (lambda c: c["data"].update(val_size=0), ["data.val_size"]),
        (lambda c: c["data"].update(val_size=60000), ["data.val_size = 60000", "lower"]),
        (
            lambda c: c["data"].update(source="synthetic", val_size=3000),
            ["data.val_size = 3000", "data.synthetic.n_train"],
        ),
        # SWA starting at or after the last epoch, or an impossible fraction
        (lambda c: c["train"]["swa"].update(epoch_start=10), ["swa.epoch_start=10", "max_epochs"]),
        (
            lambda c: c["models"]["cnn"].update(train={"max_epochs": 5, "swa": {"epoch_start": 6}}),
            ["models.cnn", "swa.epoch_start=6", "max_epochs=5"],
        ),
        (lambda c: c["train"]["swa"].update(epoch_start=2.5), ["swa.epoch_start = 2.5"]),
        (lambda c: c.update(models={}), ["models"]),
    ],
)
def test_config_mistakes_name_the_key(default, mutate, needles) -> None:
    mutate(default)
    msg = _error(default)
    for needle in needles:
        assert needle in msg, msg


def test_several_mistakes_are_reported_together(default) -> None:
    default["train"]["max_epochs"] = 0
    default["train"]["batch_size"] = "64"
    msg = _error(default)
    assert "train.max_epochs" in msg and "train.batch_size" in msg


def test_disabled_swa_may_start_late(default) -> None:
    default["train"]["swa"] = {"enabled": False, "epoch_start": 50}
    validated = validate_config(copy.deepcopy(default))
    assert resolve_model(validated, "lenet5")["swa"] == {
        "enabled": False,
        "epoch_start": 50,
        "lr": 0.0005,
    }
    default["train"]["swa"]["enabled"] = True  # the same start, enabled: refused
    with pytest.raises(ConfigError, match=r"models\.lenet5: swa\.epoch_start=50 is not before"):
        validate_config(default)


def test_unknown_model_for_a_single_job(default) -> None:
    cfg = validate_config(copy.deepcopy(default))
    with pytest.raises(ConfigError, match="did you mean 'lenet5'"):
        resolve_model(cfg, "lenet")


def test_bad_config_stops_snakemake_before_any_job(tmp_path) -> None:
    """The Snakefile validates on parse: a dry run fails with the key, no job is planned (in a
    copy: Snakemake writes its .snakemake/ where it runs)."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import copy_project

    snakemake = Path(sys.executable).parent / "snakemake"
    proc = subprocess.run(
        [str(snakemake), "-n", "--configfile", "config/smoke.yaml", "--config", "trian={}"],
        cwd=copy_project(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "did you mean 'train'" in out and "Job stats" not in out


# --- mistakes the dry run now refuses (each ran into a job, or a Snakemake error, before) -------


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project for dry runs, with an output of an earlier run in results/."""
    from tests.conftest import copy_project

    proj = copy_project(tmp_path_factory.mktemp("mistakes"))
    metrics = proj / "results/synthetic/models/cnn/test/metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text('{"model": "cnn", "test_f1": 0.98}\n')
    return proj


def dry_run(cwd, *args: str):
    import subprocess
    import sys
    from pathlib import Path

    snakemake = Path(sys.executable).parent / "snakemake"
    return subprocess.run(
        [str(snakemake), "-n", "-p", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("overlay", "args", "needle"),
    [
        # a misspelt argument of the architecture's builder (checked against its signature)
        (
            "models: {cnn: {model_kwargs: {dropuot1: 0.1}}}",
            [],
            "models.cnn.model_kwargs: 'dropuot1' is no argument of the 'cnn' builder (did you "
            "mean 'dropout1'?); it takes num_classes, dropout1, dropout2",
        ),
        # a model name that cannot be a directory and a job name
        (
            "models: {'my cnn': {arch: cnn}}",
            [],
            "models: 'my cnn' is not a valid model name; use letters, digits and _ . - only",
        ),
        # a target written after --configfile, which takes it for a config file
        (
            "{}",
            ["results/synthetic/models/cnn/test/metrics.json"],
            "--configfile results/synthetic/models/cnn/test/metrics.json is an output of the "
            "workflow: --configfile takes every file named after it",
        ),
    ],
)
def test_mistakes_fail_the_dry_run_naming_the_key(project, overlay, args, needle) -> None:
    (project / "config/mistake.yaml").write_text(overlay + "\n")
    proc = dry_run(project, "--configfile", "config/smoke.yaml", "config/mistake.yaml", *args)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"mnistbench error: {needle}" in out, out
    assert "Job stats" not in out and "Traceback" not in out


def test_numbers_in_every_yaml_spelling(project) -> None:
    """YAML 1.1 reads 1e-3 as a string; in a config file it is the number, as with --config."""
    files = ["config/config.yaml", "config/smoke.yaml", "config/mistake.yaml"]
    (project / files[-1]).write_text("train: {optimizer: {lr: 1e-3}, swa: {lr: 5E-4}}\n")
    proc = dry_run(project, "--configfile", *files[1:])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    settings = resolve_model(validate_config(load_config(*(project / f for f in files))), "cnn")
    assert settings["optimizer"]["lr"] == 0.001 and settings["swa"]["lr"] == 0.0005


def test_another_working_directory_is_refused_with_one_line(project, tmp_path) -> None:
    elsewhere = dry_run(tmp_path, "-s", str(project / "Snakefile"))
    assert elsewhere.returncode == 1
    assert (elsewhere.stdout + elsewhere.stderr).strip().splitlines() == [
        f"mnistbench error: run Snakemake in the repository, {project}: cd there, or add "
        f"-d {project} (the working directory is {tmp_path})"
    ]
    # with -d, from anywhere, the plan is the one made in the repository itself
    args = ("--configfile", str(project / "config/smoke.yaml"))
    with_d = dry_run(tmp_path, "-s", str(project / "Snakefile"), "-d", str(project), *args)
    at_root = dry_run(project, *args)
    assert with_d.returncode == at_root.returncode == 0, with_d.stdout + with_d.stderr

    def commands(proc) -> list[str]:
        return sorted(ln for ln in proc.stdout.splitlines() if "python -m mnistbench" in ln)

    assert len(commands(at_root)) == 15 and commands(with_d) == commands(at_root)


def test_a_config_file_with_a_typo_is_not_taken_for_a_target(tmp_path) -> None:
    """Only outputs of the workflow, or files named like no config file that hold no config
    key, are taken for targets; a YAML overlay with a typo goes on to the schema's message."""
    from mnistbench.pipeline.preflight import check_configfiles

    overlay = tmp_path / "mine.yaml"
    overlay.write_text("trian: {max_epochs: 3}\n")
    check_configfiles([overlay])
    notes = tmp_path / "notes.txt"
    notes.write_text("model: cnn\n")
    with pytest.raises(ConfigError, match=r"notes\.txt is not a mnistbench config file"):
        check_configfiles([notes])
