"""Limits of the task domain, validated when built."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

HOUR_MS = 3600 * 1000


class StoreConfig(BaseModel):
    """TTLs, variable limits and retry bounds of a ``TaskStore``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_ttl_ms: int | None = Field(HOUR_MS, gt=0, description="None: no expiry")
    max_ttl_ms: int | None = Field(24 * HOUR_MS, gt=0, description="None: unbounded")
    max_variables_bytes: int = Field(1024 * 1024, gt=0)
    max_depth: int = Field(10, gt=0)
    max_string_bytes: int = Field(64 * 1024, gt=0, description="one string of a variable")
    max_result_bytes: int = Field(1024 * 1024, gt=0, description="a result or error, in all")
    poll_interval_ms: int = Field(500, gt=0)
    max_retries: int = Field(5, ge=0, description="CAS retries after the first attempt")

    @model_validator(mode="after")
    def _default_within_max(self) -> StoreConfig:
        if self.max_ttl_ms is not None and (
            self.default_ttl_ms is None or self.default_ttl_ms > self.max_ttl_ms
        ):
            raise ValueError("default_ttl_ms must be set and at most max_ttl_ms")
        return self


class SecurityConfig(BaseModel):
    """Per-owner bounds and who may own tasks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tasks_per_owner: int = Field(1000, gt=0)
    """Live tasks, finished ones included until their TTL: what an owner holds, not only
    what runs (see README, Task domain)."""
    allow_anonymous: bool = False
