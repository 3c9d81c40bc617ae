import socket

from styleavatar.live.hosts import host_allowed, host_name


def test_host_name_strips_the_port():
    assert host_name("LocalHost:7860") == "localhost"
    assert host_name("[::1]:7860") == "::1"
    assert host_name("::1") == "::1"
    assert host_name("example.com") == "example.com"


def test_only_addresses_and_our_own_names_are_answered():
    assert host_allowed("127.0.0.1:7860") and host_allowed("[::1]:80") and host_allowed("192.168.1.20:7860")
    assert host_allowed("localhost:7860") and host_allowed(f"{socket.gethostname()}:1")
    assert not host_allowed("evil.example.com:7860")  # a rebinding attacker's name
    assert not host_allowed("localhost.evil.example.com")
    assert not host_allowed(None) and not host_allowed("")
    assert host_allowed("studio.lan:7860", extra=["studio.lan"])
