"""Device, browser and OS from a user agent, with the maintained ua-parser
library (its regexes track new devices; hand-written checks would rot)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ua_parser import parse

_TABLET = re.compile(r"iPad|Tablet|PlayBook|Silk|Kindle|(Android(?!.*Mobile))", re.I)
_MOBILE = re.compile(r"Mobi|iPhone|iPod|Android.*Mobile|Windows Phone|BlackBerry", re.I)


@dataclass(frozen=True)
class DeviceInfo:
    device: str  # desktop | mobile | tablet
    browser: str
    os: str

    @property
    def label(self) -> str:
        parts = [self.device.capitalize()]
        if self.browser:
            parts.append(self.browser)
        if self.os:
            parts.append(f"on {self.os}")
        return " · ".join(parts[:2]) + (f" {parts[2]}" if len(parts) > 2 else "")


@lru_cache(maxsize=2048)
def device_from_user_agent(user_agent: str) -> DeviceInfo:
    ua = (user_agent or "")[:512]
    result = parse(ua)
    browser = result.user_agent.family if result.user_agent else ""
    os_name = result.os.family if result.os else ""
    if _TABLET.search(ua):
        device = "tablet"
    elif _MOBILE.search(ua):
        device = "mobile"
    else:
        device = "desktop"
    return DeviceInfo(device, "" if browser == "Other" else browser, "" if os_name == "Other" else os_name)
