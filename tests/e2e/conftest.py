"""A project folder (users, model, SQLite config DB) served by a real uvicorn, for job tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from api.models import CampaignRow
from lib import schema
from lib.api_client import ConfigApiClient
from lib.data import write_users
from tests.servers import uvicorn_server


@dataclass
class Project:
    root: Path
    url: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "DATA_DIR": str(self.root / "data"),
            "MODEL_DIR": str(self.root / "models"),
            "OUTPUT_DIR": str(self.root / "output"),
            "CONFIG_API_URL": self.url,
        }

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


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Path) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("project")
    write_users(root / "data" / "sample_users.parquet", 1_000, seed=42)
    shutil.copytree(trained_model_dir, root / "models")
    (root / "output").mkdir()
    env = {
        "DATA_DIR": str(root / "data"),
        "MODEL_DIR": str(root / "models"),
        "OUTPUT_DIR": str(root / "output"),
    }
    with uvicorn_server(env, root / "api.log") as url:
        yield Project(root, url)
