"""The CPR Direkte mainframe emulator: a standalone server that answers exactly like the spec.

Built on the same sans-IO codec as the gateway and answering from a synthetic
register. Start one with :class:`Emulator` and a config from :func:`load_config`
(the shipped demo config is at :func:`default_config_path`); tests use
:func:`emulator_harness.running_emulator`.
"""

from cpr_mainframe.config import EmulatorConfig, default_config_path, load_config
from cpr_mainframe.server import Emulator, EmulatorStats

__all__ = ["Emulator", "EmulatorConfig", "EmulatorStats", "default_config_path", "load_config"]
