"""Device, browser and OS from real user-agent strings."""

from __future__ import annotations

import pytest

from chatdash.services.devices import DeviceInfo, device_from_user_agent

IPHONE_SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                 "Version/17.2 Mobile/15E148 Safari/604.1")
IPHONE_CHROME = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                 "CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1")
ANDROID_PHONE_CHROME = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                        "Chrome/120.0.6099.144 Mobile Safari/537.36")
ANDROID_PHONE_FIREFOX = "Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0"
IPAD_SAFARI = ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
               "Version/16.6 Mobile/15E148 Safari/604.1")
ANDROID_TABLET_CHROME = ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
                         "Chrome/120.0.6099.144 Safari/537.36")
ANDROID_TABLET_FIREFOX = "Mozilla/5.0 (Android 14; Tablet; rv:121.0) Gecko/121.0 Firefox/121.0"
KINDLE_FIRE_SILK = ("Mozilla/5.0 (Linux; U; Android 4.0.3; en-us; KFTT Build/IML74K) AppleWebKit/537.36 "
                    "(KHTML, like Gecko) Silk/3.68 like Chrome/39.0.2171.93 Safari/537.36")
WINDOWS_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/120.0.0.0 Safari/537.36")
WINDOWS_EDGE = WINDOWS_CHROME + " Edg/120.0.2210.91"
MACOS_SAFARI = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                "Version/17.2 Safari/605.1.15")
LINUX_FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
UBUNTU_FIREFOX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


@pytest.mark.parametrize(
    ("user_agent", "device", "browser", "os"),
    [
        (IPHONE_SAFARI, "mobile", "Mobile Safari", "iOS"),
        (IPHONE_CHROME, "mobile", "Chrome Mobile iOS", "iOS"),
        (ANDROID_PHONE_CHROME, "mobile", "Chrome Mobile", "Android"),
        (ANDROID_PHONE_FIREFOX, "mobile", "Firefox Mobile", "Android"),
        (IPAD_SAFARI, "tablet", "Mobile Safari", "iOS"),
        (ANDROID_TABLET_CHROME, "tablet", "Chrome", "Android"),
        (ANDROID_TABLET_FIREFOX, "tablet", "Firefox Mobile", "Android"),
        (KINDLE_FIRE_SILK, "tablet", "Amazon Silk", "Android"),
        (WINDOWS_CHROME, "desktop", "Chrome", "Windows"),
        (WINDOWS_EDGE, "desktop", "Edge", "Windows"),
        (MACOS_SAFARI, "desktop", "Safari", "Mac OS X"),
        (LINUX_FIREFOX, "desktop", "Firefox", "Linux"),
        (UBUNTU_FIREFOX, "desktop", "Firefox", "Ubuntu"),
    ],
    ids=["iphone-safari", "iphone-chrome", "android-phone-chrome", "android-phone-firefox", "ipad-safari",
         "android-tablet-chrome", "android-tablet-firefox", "kindle-silk", "windows-chrome", "windows-edge",
         "macos-safari", "linux-firefox", "ubuntu-firefox"],
)
def test_real_user_agents(user_agent, device, browser, os):
    assert device_from_user_agent(user_agent) == DeviceInfo(device, browser, os)


@pytest.mark.parametrize("user_agent", ["", None])
def test_missing_user_agent_is_a_desktop_with_no_browser(user_agent):
    assert device_from_user_agent(user_agent) == DeviceInfo("desktop", "", "")


def test_unknown_agent_keeps_what_is_known_and_leaves_the_rest_empty():
    info = device_from_user_agent("Mozilla/5.0 (compatible; SomethingNew)")
    assert info.device == "desktop"
    assert info.os == ""  # ua-parser's "Other" is not shown to the admin
    assert info.browser != "Other"


def test_very_long_user_agent_is_handled():
    info = device_from_user_agent(IPHONE_SAFARI + " x" * 100_000)
    assert info.device == "mobile"
    assert info.os == "iOS"


@pytest.mark.parametrize(
    ("info", "label"),
    [
        (DeviceInfo("mobile", "Mobile Safari", "iOS"), "Mobile · Mobile Safari on iOS"),
        (DeviceInfo("desktop", "Firefox", ""), "Desktop · Firefox"),
        (DeviceInfo("desktop", "", ""), "Desktop"),
    ],
)
def test_label_reads_as_one_line_for_the_admin(info, label):
    assert info.label == label
