"""HTTPS by default: the self-signed certificate, the institution's one, a TLS front end, Secure cookies.

Real hubs and proxy, real TLS (requests checks the certificate against the file the hub
serves), PAM logins; certificates made with ``cryptography`` as an institution's CA would.
"""
import datetime
import pathlib
import socket
import ssl
import subprocess

import psutil
import pytest
import requests
from course_hub import paths, tls
from course_hub import settings as course_settings
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.hub import hubkit


def served_certificate(url):
    """The certificate the server at ``url`` presents (DER), whatever its issuer."""
    host, port = url.split("://")[1].split(":")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, int(port)), timeout=10) as raw, context.wrap_socket(raw) as wrapped:
        return wrapped.getpeercert(binary_form=True)


def institution_certificate(folder, name="localhost"):
    """An institution's certificate and key for ``name`` (and 127.0.0.1), signed by its own CA."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Example University CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=90))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name),
                                                        x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    cert_path, key_path, ca_path = folder / "fullchain.pem", folder / "privkey.pem", folder / "ca.pem"
    cert_path.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_path.chmod(0o600)
    ca_path.write_bytes(ca.public_bytes(pem))
    return cert_path, key_path, ca_path


def test_the_hub_serves_https_with_its_self_signed_certificate(hub):
    assert hub.url.startswith("https://")
    certificate = pathlib.Path(hub.verify)
    assert certificate == tls.self_signed_files(hub.state_dir)[0]
    # Checked against the certificate the hub made: the TLS handshake and the names hold.
    assert requests.get(f"{hub.url}/hub/health", verify=hub.verify, timeout=30).status_code == 200
    # It is nobody's trusted certificate: a client without it refuses the connection.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{hub.url}/hub/health", timeout=30)
    info = tls.describe(certificate)
    assert {socket.gethostname(), "localhost", "127.0.0.1"} <= set(info["names"])
    assert info["not_after"] - datetime.datetime.now(datetime.timezone.utc) > datetime.timedelta(days=700)
    key = tls.self_signed_files(hub.state_dir)[1]
    assert key.stat().st_mode & 0o777 == 0o600 and key.parent.stat().st_mode & 0o777 == 0o700
    assert served_certificate(hub.url) == x509.load_pem_x509_certificate(certificate.read_bytes()).public_bytes(
        serialization.Encoding.DER)


def test_plain_http_is_not_served_on_the_course_port(hub):
    try:
        response = requests.get(f"http://127.0.0.1:{hub.port}/hub/login", timeout=30, allow_redirects=False)
    except requests.ConnectionError:
        return  # the TLS server hangs up on a request in clear
    assert response.status_code >= 400 and "password" not in response.text.lower(), (
        f"plain HTTP got HTTP {response.status_code}: {response.text[:300]}")


def test_every_cookie_is_secure(hub, make_user):
    session = hubkit.HubSession(hub, *make_user("student"))
    session.start_server()
    session.open_server()
    cookies = {(cookie.name, cookie.path): cookie.secure for cookie in session.http.cookies}
    names = {name for name, _ in cookies}
    assert {"jupyterhub-session-id", "_xsrf"} <= names and any(n.startswith("jupyterhub-user-") for n in names), names
    assert all(cookies.values()), f"cookies without Secure: {[key for key, secure in cookies.items() if not secure]}"


def test_the_certificate_is_kept_across_restarts_and_made_again_before_it_expires(start_hub):
    own = start_hub()
    cert_path, key_path = tls.self_signed_files(own.state_dir)
    first = cert_path.read_bytes()
    own.stop()
    own.start()
    assert cert_path.read_bytes() == first, "a restart replaced a certificate that was still good"
    # One that ends within RENEW_BEFORE_DAYS is made again at the next start.
    made = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=tls.SELF_SIGNED_DAYS - 10)
    tls.make_self_signed(own.state_dir, "127.0.0.1", now=made)
    assert "expires on" in tls.why_renew(own.state_dir, "127.0.0.1")
    own.stop()
    own.start()
    renewed = tls.describe(cert_path)["not_after"]
    assert renewed - datetime.datetime.now(datetime.timezone.utc) > datetime.timedelta(days=700)
    assert requests.get(f"{own.url}/hub/health", verify=own.verify, timeout=30).status_code == 200
    assert "made a self-signed certificate" in own.log_text()


def test_the_institutions_certificate_is_checked_written_and_served(tmp_path, start_hub, course_repo_path,
                                                                 git_config_system):
    cert, key, ca = institution_certificate(tmp_path)
    site = tmp_path / "site.yaml"
    site.write_text("# this server's own settings\nidle_culler:\n  timeout_seconds: 1800  # a short class\n")
    env = {**hubkit.hub_environment(site)}
    use = subprocess.run([str(paths.VENV_BIN / "course-tls"), "use", "--cert", str(cert), "--key", str(key)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert use.returncode == 0, use.stderr
    text = site.read_text()
    # Written into the site file, the operator's lines and comments kept.
    assert "# this server's own settings" in text and "timeout_seconds: 1800  # a short class" in text
    server = course_settings.load_settings(site)["server"]
    assert (server["ssl_cert"], server["ssl_key"]) == (str(cert), str(key))
    assert tls.https_mode(server) == "certificate"
    status = subprocess.run([str(paths.VENV_BIN / "course-tls"), "status"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert status.returncode == 0 and f"certificate: {cert}, for localhost, 127.0.0.1" in status.stdout, status.stdout

    own = start_hub(settings={"server": {"ssl_cert": str(cert), "ssl_key": str(key)}})
    assert requests.get(f"{own.url}/hub/health", verify=str(ca), timeout=30).status_code == 200
    assert not tls.self_signed_files(own.state_dir)[0].exists(), "a self-signed certificate was made anyway"


@pytest.mark.parametrize("problem", ["missing", "not pem", "another key", "expired"])
def test_a_bad_certificate_is_refused_by_name_and_changes_nothing(tmp_path, problem):
    cert, key, _ = institution_certificate(tmp_path)
    if problem == "missing":
        cert = tmp_path / "nowhere.pem"
        expected = f"cert: cannot read {cert}"
    elif problem == "not pem":
        key.write_text("not a key\n")
        expected = f"key: expected an unencrypted PEM private key in {key}, got something else"
    elif problem == "another key":
        other = tmp_path / "other"
        other.mkdir()
        _, key, _ = institution_certificate(other)
        expected = f"key: expected the private key of {cert}, got the key of another certificate"
    else:
        expected = "expired on"
    site = tmp_path / "site.yaml"
    site.write_text("hub:\n  port: 9443\n")
    arguments = ["use", "--cert", str(cert), "--key", str(key)]
    if problem == "expired":
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=120)
        with pytest.raises(tls.TLSError, match=expected):
            tls.check_pair(cert, key, now=later)
        return
    refused = subprocess.run([str(paths.VENV_BIN / "course-tls"), *arguments], env=hubkit.hub_environment(site),
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and expected in refused.stderr, refused.stderr
    assert site.read_text() == "hub:\n  port: 9443\n"


def test_behind_a_tls_front_end_the_hub_listens_on_localhost_only(start_hub):
    own = start_hub(settings={"server": {"ip": "", "tls_front_end": True}})
    assert own.url.startswith("http://")
    assert hubkit.answers_health(own.url)
    listening = {c.laddr for c in psutil.Process(own.proxy_pid()).net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == own.port}
    assert listening and {address.ip for address in listening} == {"127.0.0.1"}, listening
    assert not tls.self_signed_files(own.state_dir)[0].exists()


def test_front_end_and_a_certificate_together_are_refused(tmp_path):
    site = hubkit.write_settings(tmp_path / "site.yaml", {"server": {
        "tls_front_end": True, "ssl_cert": "/etc/ssl/c.pem", "ssl_key": "/etc/ssl/k.pem"}})
    with pytest.raises(course_settings.SettingsError, match="server.tls_front_end: expected false when server.ssl_cert"):
        course_settings.load_settings(site)
    site = hubkit.write_settings(tmp_path / "site.yaml", {"server": {"ssl_cert": "c.pem", "ssl_key": "k.pem"}})
    with pytest.raises(course_settings.SettingsError, match="server.ssl_cert: expected an absolute path, got 'c.pem'"):
        course_settings.load_settings(site)
