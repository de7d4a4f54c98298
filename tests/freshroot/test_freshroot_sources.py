"""How the fresh root finds the host's package sources: apt's two formats, keyrings, variables."""
import pytest

from tests.freshroot import freshroot

DEB822 = """Types: deb
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: {keyring}

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main
Signed-By: {keyring}
"""


def test_the_mirror_and_keyring_of_a_deb822_source(tmp_path):
    keyring = tmp_path / "archive.gpg"
    keyring.write_bytes(b"key")
    source = tmp_path / "debian.sources"
    source.write_text(DEB822.format(keyring=keyring))
    assert freshroot.debian_mirror([source]) == "http://mirror.invalid/debian"
    assert freshroot.apt_keyrings([source]) == [keyring]


def test_the_mirror_and_keyring_of_a_one_line_source(tmp_path):
    keyring = tmp_path / "archive.gpg"
    keyring.write_bytes(b"key")
    source = tmp_path / "sources.list"
    source.write_text(f"# a comment\ndeb-src http://src.invalid/debian bookworm main\n"
                      f"deb [arch=amd64 signed-by={keyring}] http://mirror.invalid/debian bookworm main\n")
    assert freshroot.debian_mirror([source]) == "http://mirror.invalid/debian"
    assert freshroot.apt_keyrings([source]) == [keyring]


def test_no_bookworm_source_is_refused_naming_the_files(tmp_path):
    source = tmp_path / "old.list"
    source.write_text("deb http://mirror.invalid/debian bullseye main\n")
    with pytest.raises(freshroot.FreshRootError, match=f"names the suite 'bookworm'.*{source}"):
        freshroot.debian_mirror([source])
    with pytest.raises(freshroot.FreshRootError, match="nothing: no apt sources"):
        freshroot.debian_mirror([])


def test_only_the_variables_that_reach_the_registries_pass():
    passed = freshroot.passed_environment({
        "PIP_CONSTRAINT": "/c.txt", "NODE_EXTRA_CA_CERTS": "/ca.crt", "https_proxy": "http://p.invalid",
        "NPM_CONFIG_CAFILE": "/ca.crt", "HOME": "/home/x", "PIPX_HOME": "/x", "DLCOURSE_HUB_PORT": "1",
    })
    assert passed == {"PIP_CONSTRAINT": "/c.txt", "NODE_EXTRA_CA_CERTS": "/ca.crt",
                      "https_proxy": "http://p.invalid", "NPM_CONFIG_CAFILE": "/ca.crt"}
