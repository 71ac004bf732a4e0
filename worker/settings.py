"""``from worker.settings import load_settings``: the settings (``worker.protocol.settings``)."""

from worker.protocol.settings import Settings, SettingsError, load_settings

__all__ = ["Settings", "SettingsError", "load_settings"]
