"""`make demo`: the whole pipeline on the embedded defaults, end to end.

1. generate data/sample_users.parquet, the users to score (kept if already there);
2. train and register the model on its own labelled set (kept if the registered artifact
   is intact);
3. start the config API on SQLite in the background;
4. create the seed's "Black Friday Campaign" through HTTP (or reuse it);
5. run notebook 04 with papermill for it and render the HTML report;
6. print a summary and stop the API, also when a step fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lib import schema
from lib.api_server import api_process, free_port, port_is_free
from lib.contract import seed_campaign
from lib.errors import ModelError, PipelineError
from lib.settings import PROJECT_ROOT, get_settings

SEED_CAMPAIGN = seed_campaign()


def step(text: str) -> None:
    print(f"\n━━ {text}", flush=True)


def _pick_port(preferred: int) -> int:
    """The preferred port if it is free, else any free one (and say so)."""
    if preferred and port_is_free(preferred):
        return preferred
    port = free_port()
    if preferred:
        print(f"⚠️  port {preferred} is busy; the demo API uses port {port} instead")
    return port


def _run(*args: str) -> None:
    """A project command in its own process, exactly as a learner would type it."""
    print(f"$ python {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, check=True)


def ensure_data() -> None:
    settings = get_settings()
    step("1/5 Synthetic users")
    if settings.users_path.exists():
        print(f"✅ Reusing {settings.users_path}")
        return
    _run("-m", "lib.data")


def ensure_model() -> None:
    from lib.registry import resolve_artifact

    step("2/5 CatBoost model")
    try:
        artifact = resolve_artifact(SEED_CAMPAIGN["model_path"])
        print(f"✅ Reusing registered model {artifact.path} (sha256 {artifact.sha256[:12]}…)")
    except ModelError:
        _run("-m", "lib.training")  # trains on its own labelled set (seed 7), then registers


def main() -> int:
    from lib.api_client import ConfigApiClient
    from lib.runner import score

    settings = get_settings()
    ensure_data()
    ensure_model()
    step("3/5 Config API (SQLite)")
    port = _pick_port(settings.api_port)
    log = settings.output_dir / "demo_api.log"
    try:
        with api_process(log, port=port) as url:
            print(f"✅ Config API on {url} (docs: {url}/docs), log: {log}")
            step("4/5 Campaign")
            with ConfigApiClient(url) as api:
                campaign = api.find_campaign(SEED_CAMPAIGN["name"])
                if campaign is None:
                    campaign = api.create_campaign(**SEED_CAMPAIGN)
                    print(f"✅ Created campaign {campaign.id}: {campaign.name}")
                else:
                    if not campaign.is_active:
                        campaign = api.update_campaign(campaign.id, is_active=True)
                    print(f"✅ Reusing campaign {campaign.id}: {campaign.name}")
            notebook = "notebooks/04_spark_scoring.ipynb"
            step(f"5/5 Scoring: papermill {notebook} -p campaign_id {campaign.id}")
            code, executed, html = score(
                campaign.id, config_api_url=url, name=f"demo_campaign_{campaign.id}"
            )
            if code:
                print(f"❌ Scoring failed (exit {code}); see {executed}")
                return code
    finally:
        print("🛑 Config API stopped")
    summarise(campaign.id, executed, html)
    return 0


def summarise(campaign_id: int, executed: Path, html: Path | None) -> None:
    # Arrow reads the files by path, on its own file system: no Python file object is
    # handed to Arrow's I/O threads. (pandas.read_parquet passes one for a single file, and
    # an Arrow thread still calling back into Python at interpreter exit aborts the process
    # with "terminate called without an active exception" after the demo has succeeded.)
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from lib.contacts import contact_list_path

    settings = get_settings()
    output = settings.prediction_path(campaign_id).absolute()
    from lib.drift import band
    from lib.report import read_run

    scores = ds.dataset(str(output), format="parquet").to_table(
        columns=[schema.SCORE, schema.GROUP]
    )
    n_users = ds.dataset(str(settings.users_path), format="parquet").count_rows()
    audience = scores.num_rows
    mean = pc.mean(scores.column(schema.SCORE)).as_py() if audience else None
    held = pc.sum(pc.equal(scores.column(schema.GROUP), "control")).as_py() or 0
    result = (read_run(executed).payload or {}).get("result", {})
    drift = result.get("drift")
    print("\n━━ Summary")
    print(f"Users:      {n_users:,}")
    print(f"Audience:   {audience:,} ({audience / n_users:.1%})" if n_users else "Audience:   0")
    print(
        f"Held out:   {held:,} (the control group: not contacted; notebook 06 measures the effect)"
    )
    print(f"Mean score: {mean:.3f}" if mean is not None else "Mean score: n/a")
    if drift:
        largest = max([*drift["features"].values(), *([drift["score"]] if drift["score"] else [])])
        print(f"Drift:      largest PSI {largest:.3f} ({band(largest)}; see the report)")
    print(f"Scored:     {result.get('as_of') or 'the undated sample (no --as-of)'}")
    print(f"Output:     {output}")
    print(f"Notebook:   {executed.absolute()}")
    if html:
        print(f"Report:     {html.absolute()}")
        contacts = contact_list_path(html)
        if contacts.exists():  # the treatment users the report says to contact
            print(f"Contacts:   {contacts.absolute()}")
    print(
        "Next: `make lab`: it starts the config API and Spark Connect in the background "
        "(`make up`; the demo's API has stopped), then JupyterLab; open "
        "notebooks/01_generate_data.ipynb. `make down` stops the services."
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PipelineError as err:
        print(f"❌ error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except subprocess.CalledProcessError as err:
        sys.exit(err.returncode)
