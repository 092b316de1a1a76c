"""The project folder the end-to-end and browser tests share: users, the trained model and
a SQLite config DB, served by one real uvicorn for the whole session (the ``project``
fixture in tests/conftest.py). Tests create campaigns under names of their own and never
depend on what else is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from api.models import CampaignRow
from lib import schema
from lib.api_client import ConfigApiClient
from tests.helpers import project_env


@dataclass
class Project:
    """The shared project folder and the URL of the config API serving it."""

    root: Path
    url: str

    @property
    def env(self) -> dict[str, str]:
        """The folders and the API URL, for subprocesses and kernels."""
        return project_env(self.root, CONFIG_API_URL=self.url)

    @property
    def users(self) -> Path:
        return self.root / "data" / "sample_users.parquet"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def output(self, campaign_id: int) -> Path:
        return self.root / "output" / f"predictions_campaign_{campaign_id}.parquet"

    def api(self) -> ConfigApiClient:
        return ConfigApiClient(self.url)

    def create_campaign(self, name: str, audience_filter: str | None = None, **extra) -> int:
        with self.api() as api:
            return api.create_campaign(
                name=name,
                model_path="models/campaign_model_v1.pkl",
                audience_filter=audience_filter,
                features=list(schema.FEATURES),
                **extra,
            ).id

    def insert_raw_campaign(self, **fields) -> int:
        """Write a campaign straight into the database, bypassing the API's validation."""
        engine = create_engine(f"sqlite:///{self.root / 'data' / 'campaigns.db'}")
        values = {
            "model_path": "models/campaign_model_v1.pkl",
            "features": list(schema.FEATURES),
            **fields,
        }
        with Session(engine) as session:
            campaign = CampaignRow(**values)
            session.add(campaign)
            session.commit()
            campaign_id = campaign.id
        engine.dispose()
        return campaign_id
