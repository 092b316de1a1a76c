"""Reference solutions of the notebooks' exercises, one code string per exercise cell.

``executed_notebook`` (tests/notebooks/conftest.py) injects each right after its cell tagged
``exercise``, in order, and asserts that every cell tagged ``check`` then says "Correct".
They use only what the notebook defines, as a learner's answer would.
"""

from __future__ import annotations

SOLUTIONS: dict[str, list[str]] = {
    "01_generate_data.ipynb": [
        'answer = training.loc[training["engagement_score"] >= 0.6, "converted"].mean()',
        'answer = int((users["days_since_last_purchase"] > 365).sum())',
    ],
    "02_train_catboost.ipynb": [
        "scores, labels = result.test_scores, result.test_labels\n"
        "best = np.argsort(-scores)[: len(scores) // 10]\n"
        "answer = labels[best].mean() / labels.mean()",
    ],
    "03_config_api.ipynb": [
        "answer = \"country = 'DE' AND age >= 30\"",
    ],
    "04_spark_scoring.ipynb": [
        'answer = deciles.loc[deciles["decile"] <= 3, "expected"].sum()',
    ],
    "05_ibis_audiences.ipynb": [
        "answer = \"country IN ('FR', 'DE') AND age BETWEEN 18 AND 30\"",
    ],
    "06_campaign_effect.ipynb": [
        "from statistics import NormalDist\n"
        "\n"
        'converted_t = outcomes[outcomes["group"] == "treatment"]["converted"]\n'
        'converted_c = outcomes[outcomes["group"] == "control"]["converted"]\n'
        "p_t, p_c = converted_t.mean(), converted_c.mean()\n"
        "se = (p_t * (1 - p_t) / len(converted_t) + p_c * (1 - p_c) / len(converted_c)) ** 0.5\n"
        "z = NormalDist().inv_cdf(0.5 + confidence / 2)\n"
        "answer = (p_t - p_c - z * se, p_t - p_c + z * se)",
    ],
}
