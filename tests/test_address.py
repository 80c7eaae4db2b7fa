"""Who a visitor is behind any proxy chain (address.py): internal hops and the owner's trusted
proxies are skipped from the right, then FORWARDED_HOPS public proxies; nothing a visitor writes
on the left changes who they are."""

from __future__ import annotations

import logging

import pytest

from kimichat.address import AddressReader, parse_networks
from kimichat.settings import Settings, SettingsError

PEER = "10.20.0.3"  # the platform's proxy, as the app sees it


def visitor(chain: str, hops: int = 1, trusted: str = "") -> str:
    return AddressReader(hops, parse_networks(trusted)).address({"x-forwarded-for": chain}, PEER)


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),  # one proxy, which appends what it saw
        ("203.0.113.7, 10.0.0.5", "203.0.113.7"),  # an internal hop at the end
        ("203.0.113.7, 172.16.4.4, 10.0.0.5", "203.0.113.7"),  # three proxies, two of them internal
        ("203.0.113.7, 10.0.0.5, 192.168.1.1", "203.0.113.7"),
        ("2001:db8::7, fd00::1", "2001:db8::7"),  # IPv6, unique-local hop
        ("2001:db8::7, fe80::1, ::1", "2001:db8::7"),  # link-local and loopback hops
        ("[2001:db8::8]:443", "2001:db8::8"),  # brackets and ports are not part of who
        ("203.0.113.9:51234", "203.0.113.9"),
        ("::ffff:203.0.113.10", "203.0.113.10"),  # an IPv4-mapped address is that IPv4 address
    ],
)
def test_the_visitor_is_the_rightmost_entry_no_proxy_of_ours_wrote(chain, expected):
    assert visitor(chain) == expected


@pytest.mark.parametrize(
    "written",
    ["10.9.9.9", "192.168.0.1, 10.0.0.1", "127.0.0.1", "198.51.100.66", "not-an-address", "fd00::66"],
)
def test_what_a_visitor_writes_on_the_left_changes_nothing(written):
    """The proxy appends the real address after whatever the visitor sent, private entries included."""
    assert visitor(f"{written}, 203.0.113.7, 10.0.0.5") == "203.0.113.7"


def test_two_visitors_behind_one_internal_hop_stay_two():
    assert visitor("203.0.113.1, 10.0.0.5") != visitor("203.0.113.2, 10.0.0.5")


def test_a_chain_of_internal_addresses_only_is_read_at_its_end_never_its_start():
    """A visitor inside the platform's network: the entry the nearest proxy wrote, not one to its left."""
    assert visitor("10.1.1.1, 10.0.0.5") == "10.0.0.5"
    assert visitor("10.7.7.7, 10.0.0.5") == visitor("10.8.8.8, 10.0.0.5")


def test_public_proxies_are_skipped_by_the_owners_list_or_by_count():
    behind_a_cdn = "203.0.113.7, 104.16.0.1, 10.0.0.5"
    assert visitor(behind_a_cdn) == "104.16.0.1"  # not told: the CDN is the visitor
    assert visitor(behind_a_cdn, trusted="104.16.0.0/12") == "203.0.113.7"
    assert visitor(behind_a_cdn, hops=2) == "203.0.113.7"


def test_with_no_trusted_proxy_the_header_is_ignored():
    assert AddressReader(0).address({"x-forwarded-for": "203.0.113.7"}, PEER) == PEER
    assert AddressReader(1).address({}, PEER) == PEER


def test_the_chains_shape_is_logged_once_without_addresses(caplog):
    reader = AddressReader(1)
    with caplog.at_level(logging.INFO, logger="kimichat.address"):
        reader.address({"x-forwarded-for": "203.0.113.7, 10.0.0.5"}, PEER)
        reader.address({"x-forwarded-for": "203.0.113.8, 10.0.0.5"}, PEER)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "visitor addresses: X-Forwarded-For has 2 entries [public, internal]; the visitor is entry 1 (FORWARDED_HOPS=1)"
    ]
    assert "203.0.113" not in lines[0] and "10.0.0.5" not in lines[0]


def test_trusted_proxies_must_be_networks():
    assert Settings.from_env({"TRUSTED_PROXIES": "104.16.0.0/12, 2400:cb00::/32"}).trusted_proxies
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES"):
        Settings.from_env({"TRUSTED_PROXIES": "cloudflare"})
