"""Settings of the worker and the client, from ``TASKSTORE_*`` variables and ``.env``.

Every field is documented with its default in ``.env.example``. URLs may hold
passwords, so they are ``SecretStr``: reprs and logs show them masked.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from store.redis.connect import EMBEDDED, default_embedded_dir, is_tls
from store.tasks import SecurityConfig, StoreConfig

# Intervals must tile the minute or the hour, because arq's cron fires on clock fields.
_MINUTE, _HOUR = 60, 3600


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TASKSTORE_",
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
        validate_default=True,
    )

    redis_url: SecretStr = Field(SecretStr(EMBEDDED), description="queue Redis; embedded if unset")
    store_url: SecretStr | None = Field(None, description="store Redis; defaults to REDIS_URL")
    key_prefix: str = "ts"
    queue_name: str = "taskstore:queue"
    max_jobs: int = Field(50, gt=0)
    job_timeout_s: float = Field(30, gt=0)
    lease_s: float = Field(5, ge=1, le=300)
    max_tries: int = Field(5, gt=0)
    keep_result_s: float = Field(60, gt=0)
    reply_timeout_s: float = Field(10, gt=0, le=86_400)
    poll_delay_s: float = Field(0.001, gt=0)
    batch_jobs: int = Field(100, gt=0, le=1000)
    batch_writes: int = Field(10_000, gt=0, le=100_000)
    coalesce_window_ms: float = Field(0, ge=0, le=1000)
    coalesce_max_ops: int = Field(100, gt=0, le=1000)
    sweep_interval_s: int = 60
    reap_interval_s: int = 300
    sweep_batch: int = Field(1000, gt=0, le=5000)
    reap_batch: int = Field(1000, gt=0)
    embedded_dir: Path = Field(default_factory=default_embedded_dir)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["plain", "json"] = "plain"
    metrics_port: int | None = Field(None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    failed_jobs_keep: int = Field(1000, gt=0, le=100_000)
    worker_id_file: Path | None = None
    mcp_lease_s: float = Field(15, ge=0.5, le=3600)
    mcp_tool_modules: str = ""
    default_ttl_ms: int = Field(3_600_000, gt=0)
    max_ttl_ms: int = Field(86_400_000, gt=0)
    max_tasks_per_owner: int = Field(1000, gt=0)
    max_variables_bytes: int = Field(1024 * 1024, gt=0)
    max_result_bytes: int = Field(1024 * 1024, gt=0, le=3 * 1024 * 1024)
    allow_anonymous: bool = False
    durable_writes: bool = False
    durable_wait_ms: int = Field(1000, gt=0)
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(8790, ge=0, le=65535)
    dashboard_token: SecretStr | None = None
    dashboard_read_only: bool = False
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("sweep_interval_s", "reap_interval_s")
    @classmethod
    def _tiles_the_clock(cls, value: int) -> int:
        if (0 < value <= _MINUTE and _MINUTE % value == 0) or (
            _MINUTE <= value <= _HOUR and value % _MINUTE == 0 and _HOUR % value == 0
        ):
            return value
        raise ValueError("must divide a minute (1..60 s) or an hour (whole minutes up to 3600 s)")

    @model_validator(mode="after")
    def _limits_agree(self) -> Settings:
        if self.default_ttl_ms > self.max_ttl_ms:
            raise ValueError("TASKSTORE_DEFAULT_TTL_MS must not exceed TASKSTORE_MAX_TTL_MS")
        return self

    @property
    def queue_url(self) -> str:
        return self.redis_url.get_secret_value()

    @property
    def store_url_value(self) -> str:
        return (self.store_url or self.redis_url).get_secret_value()

    @property
    def replica_wait_ms(self) -> int | None:
        """What ``RedisBackend`` takes as ``durable_wait_ms``: None unless durable writes are on."""
        return self.durable_wait_ms if self.durable_writes else None

    def tls_options(self, url: str) -> dict[str, str]:
        """redis-py's TLS arguments for ``url``: the CA and client certificate of a rediss URL."""
        if not is_tls(url):
            return {}
        files = {
            "ssl_ca_certs": self.tls_ca_file,
            "ssl_certfile": self.tls_cert_file,
            "ssl_keyfile": self.tls_key_file,
        }
        return {name: str(path) for name, path in files.items() if path is not None}

    def store_config(self) -> StoreConfig:
        return StoreConfig(
            default_ttl_ms=self.default_ttl_ms,
            max_ttl_ms=self.max_ttl_ms,
            max_variables_bytes=self.max_variables_bytes,
            max_result_bytes=self.max_result_bytes,
        )

    def security_config(self) -> SecurityConfig:
        return SecurityConfig(
            max_tasks_per_owner=self.max_tasks_per_owner, allow_anonymous=self.allow_anonymous
        )

    def secrets(self) -> list[str]:
        """Passwords found in the URLs, and the dashboard's token, for the log filter to mask."""
        found = []
        for url in (self.queue_url, self.store_url_value):
            password = urlsplit(url).password
            if password:
                found.append(password)
        if self.dashboard_token is not None:
            found.append(self.dashboard_token.get_secret_value())
        return found


class SettingsError(ValueError):
    """Invalid settings, each problem named by its environment variable."""


PREFIX = "TASKSTORE_"
TEST_PREFIX = "TASKSTORE_TEST_"
"""Variables of taskstore's own test suite, which are not settings."""


def load_settings(**overrides: object) -> Settings:
    """``Settings()`` with errors that name ``TASKSTORE_*`` variables, not field names.

    A ``TASKSTORE_*`` variable (in the environment or ``.env``) that is no
    setting is an error too: a misspelt ``REDIS_URL`` would otherwise leave the
    worker on the embedded Redis without a word.
    """
    problems = unknown_variables(os.environ, Path(".env"))
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            name = f"{PREFIX}{field.upper()}" if field else "settings"
            problems.append(f"{name}: {error['msg']}")
    if problems:
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from None
    return settings


def unknown_variables(environ: Mapping[str, str], env_file: Path) -> list[str]:
    """A problem for each ``TASKSTORE_*`` variable that is no setting, with the closest one."""
    names = set(environ)
    if env_file.is_file():
        names |= set(dotenv_values(env_file))
    known = {PREFIX + name.upper() for name in Settings.model_fields}
    problems = []
    for name in sorted(names):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper.startswith(TEST_PREFIX) or upper in known:
            continue
        where = "environment" if name in environ else str(env_file)
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        problems.append(f"{name} (in the {where}) is not a setting{hint}")
    return problems
