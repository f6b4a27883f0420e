"""array_api_strict's room: the standard's reference namespace, the tests' proof of portability.

It rejects every NumPy-ism and models several devices (``CPU_DEVICE``, ``device1``, ...), so
code that passes under it runs on any conforming library.  It has no random module: its generator
draws with NumPy on the host and copies (this backend exists for testing, not speed).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from xpnet.backend._base import Backend, HostGenerator, import_library, register


@register
class StrictBackend(Backend):
    """``array_api_strict`` on one of its devices (an ``array_api_strict.Device`` or its
    name)."""

    name = "array_api_strict"
    aliases = ("strict", "array-api-strict")
    install_hint = "pip install 'xpnet[strict]'  (array-api-strict)"
    default_device_name = "CPU_DEVICE"
    generator_class = HostGenerator
    numpy_memory = True  # its arrays wrap NumPy arrays

    @classmethod
    def build(cls, device: Any = None) -> StrictBackend:
        strict = import_library("array_api_strict", cls.install_hint)
        if device is None:
            dev = strict.Device("CPU_DEVICE")
        elif isinstance(device, strict.Device):
            dev = device
        else:
            try:
                dev = strict.Device(str(device))
            except ValueError as exc:
                raise ValueError(
                    f"array_api_strict does not know the device {device!r}") from exc
        return cls(strict, dev, strict)

    @staticmethod
    def owns(x: Any) -> bool:
        return type(x).__module__.startswith("array_api_strict") and hasattr(x, "__dlpack__")

    @classmethod
    def owns_namespace(cls, mod: ModuleType) -> bool:
        return array_api_compat.is_array_api_strict_namespace(mod)

    @staticmethod
    def array_type(module: ModuleType) -> type:
        return module._array_object.Array

    @staticmethod
    def array_to_numpy(x: Any) -> np.ndarray:
        return np.from_dlpack(x)

    @property
    def device_name(self) -> str:
        # Device('device1') -> 'device1', the name Device() takes back
        return str(getattr(self.device, "_device", self.device))

    @classmethod
    def describe_devices(cls, module: ModuleType) -> list[str]:
        return [str(getattr(d, "_device", d)) for d in module.__array_namespace_info__().devices()]
