"""The live master lives in the package (the demo uses it too): see autotua_master.live."""

from autotua_master.live import LiveMaster, free_port

__all__ = ["LiveMaster", "free_port"]
