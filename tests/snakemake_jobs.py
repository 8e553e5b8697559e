"""Every job of the Snakemake DAG as JSON, built by Snakemake itself (nothing runs).

    python tests/snakemake_jobs.py [CONFIGFILE ...]     # in a copy of the project

For each job: its rule, wildcards, named inputs, outputs, params and formatted shell command,
i.e. what the rules' input functions and directives made of the config. The dry run's printout
does not show params, so this reads the DAG through Snakemake's API (its internal
``_workflow`` and ``_build_dag``, as ``snakemake --summary`` does; Snakemake 9).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings,
    DAGSettings,
    OutputSettings,
    Quietness,
    ResourceSettings,
)


def jobs(configfiles: list[Path]) -> list[dict]:
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=2),
            config_settings=ConfigSettings(configfiles=configfiles),
            snakefile=Path("Snakefile"),
        )
        workflow_api.dag(DAGSettings())
        workflow = workflow_api._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        workflow._build_dag()
        return [
            {
                "rule": job.rule.name,
                "wildcards": dict(job.wildcards_dict),
                "input": {k: list(map(str, v)) if isinstance(v, list) else [str(v)]
                          for k, v in job.input._allitems() if k is not None},
                "output": sorted(map(str, job.output)),
                "params": {k: v for k, v in job.params.items()},
                "shell": job.shellcmd,
            }
            for job in workflow.dag.jobs
            if job.rule.name != "all"
        ]  # fmt: skip


if __name__ == "__main__":
    # default=str: a parameter that is no rerun trigger (common.smk's Untracked) as its text
    print(json.dumps(jobs([Path(p) for p in sys.argv[1:]]), indent=1, default=str))
