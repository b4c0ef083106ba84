"""``cloudq.config``: the settings (``cloudq.core.config``), by the path users import."""

from cloudq.core.config import Settings, SettingsSource, load_settings

__all__ = ["Settings", "SettingsSource", "load_settings"]
