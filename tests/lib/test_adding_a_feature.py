"""A new feature column is one line in lib/schema.py plus retraining: everything else follows.

The test copies ``lib`` to a temporary folder, adds one line to ``FEATURE_FIELDS`` and, in
a fresh interpreter that imports that copy, runs what a learner would: generate data,
train and register, validate the seed campaign the way the API does, score, and draw
notebook 01's feature panels.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from lib.settings import PROJECT_ROOT

NEW_LINE = '    pa.field("loyalty_points", pa.int64(), nullable=False),  # a new feature\n'

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import matplotlib
    matplotlib.use("Agg")
    import lib
    from lib import contract, data, schema, training
    from lib.registry import load_verified
    from lib.scoring import score_pandas
    from api.validation import check_model_and_features

    root = Path(sys.argv[1])
    assert Path(lib.__file__).parent == root / "lib", lib.__file__
    users = data.generate_users(2_000, seed=1)
    result = training.train_model(data.generate_users(3_000, 7, labelled=True), iterations=20)
    training.save_model(result, root / "models")
    seed = contract.seed_campaign()
    check_model_and_features(seed["model_path"], seed["features"], root / "models")
    model = load_verified(seed["model_path"], root / "models")
    scores = score_pandas(users, model.load(), model.features)

    cell = next(
        "".join(c["source"])
        for c in json.loads(Path(sys.argv[2]).read_text())["cells"]
        if "plt.subplots" in "".join(c["source"])
    )
    import matplotlib.pyplot as plt
    namespace = {"plt": plt, "schema": schema, "users": users}
    exec(cell, namespace)
    panels = [ax.get_title() for ax in namespace["fig"].axes if ax.get_visible()]
    print(json.dumps({
        "features": list(schema.FEATURES),
        "model_features": model.features,
        "seed_features": seed["features"],
        "columns": list(users.columns),
        "scored": len(scores),
        "panels": panels,
    }))
    """
)


def test_one_schema_line_adds_a_feature_end_to_end(tmp_path: Path) -> None:
    shutil.copytree(PROJECT_ROOT / "lib", tmp_path / "lib")
    schema_file = tmp_path / "lib" / "schema.py"
    text = schema_file.read_text()
    anchor = '    pa.field("days_since_last_purchase", pa.int64(), nullable=False),\n'
    assert anchor in text
    schema_file.write_text(text.replace(anchor, anchor + NEW_LINE))  # the one edit

    out = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(tmp_path),
            str(PROJECT_ROOT / "notebooks" / "01_generate_data.ipynb"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(tmp_path), "MODEL_DIR": str(tmp_path / "models")},
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["features"][-1] == "loyalty_points"
    assert seen["model_features"] == seen["seed_features"] == seen["features"]
    assert "loyalty_points" in seen["columns"] and seen["scored"] == 2_000
    assert seen["panels"] == ["age", *seen["features"]]  # six features: a 3 x 3 grid, 7 shown
