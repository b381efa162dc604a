"""Process settings, read from the environment (prefix ``LEVERLOOP_``).

Only infrastructure lives here (where the database is, where local state goes). Learning
parameters live with the code that uses them and are passed as flow parameters.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from leverloop.errors import ConfigurationError


def _find_project_dir() -> Path | None:
    """The checkout that holds ``dbt/dbt_project.yml``: next to the installed package, else cwd."""
    here = Path(__file__).resolve()
    for candidate in [*here.parents, Path.cwd(), *Path.cwd().parents]:
        if (candidate / "dbt" / "dbt_project.yml").is_file():
            return candidate
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEVERLOOP_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL. Unset: an embedded PostgreSQL (pgserver) under LEVERLOOP_HOME.",
    )
    home: Path = Field(
        default=Path(".leverloop"),
        description="Local state: embedded database files, Prefect home, last-known-good configs.",
    )
    embedded_dbname: str = Field(
        default="leverloop", description="Database name in the embedded server."
    )
    project_dir: Path | None = Field(
        default=None,
        description="The leverloop checkout (holds dbt/ and expectations/). Found automatically.",
    )

    @cached_property
    def project_root(self) -> Path:
        root = self.project_dir or _find_project_dir()
        if root is None or not (root / "dbt" / "dbt_project.yml").is_file():
            raise ConfigurationError(
                "LEVERLOOP_PROJECT_DIR: cannot find the leverloop checkout (a folder holding "
                "dbt/dbt_project.yml); set LEVERLOOP_PROJECT_DIR to it"
            )
        return root.resolve()

    @property
    def home_dir(self) -> Path:
        path = self.home.expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        return path

    @property
    def dbt_project_dir(self) -> Path:
        return self.project_root / "dbt"

    @property
    def expectations_dir(self) -> Path:
        return self.project_root / "expectations"


def get_settings() -> Settings:
    return Settings()
