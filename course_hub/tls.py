"""HTTPS for the course hub: the institution's certificate, a self-signed one, or a TLS front end.

Students type their Unix password into the login form, so the hub serves HTTPS on the course
port by default. Three ways, chosen by the settings' ``server`` section (:func:`https_mode`):

``certificate``
    ``ssl_cert`` and ``ssl_key`` name the institution's certificate (full chain) and key.
    ``deploy/install.sh --cert FILE --key FILE`` (or ``course-tls use``) checks the pair and
    writes both paths into the site settings, which every re-install keeps.
``self-signed`` (the default)
    A certificate the hub makes for this machine's name, ``localhost`` and its loopback
    addresses, kept in the state folder (so across re-installs) and made again at a hub start
    when it is missing, due to expire within :data:`RENEW_BEFORE_DAYS`, or made for another
    hostname. Browsers warn about it once; put the real certificate in place for a class.
``front-end``
    ``tls_front_end: true``: a TLS front end (a reverse proxy, a load balancer) holds the
    certificate and forwards to the hub, which then listens on ``127.0.0.1`` only, in plain HTTP.

In every way the hub's cookies are ``Secure`` (jupyterhub_config.py).

``course-tls`` (the console script) shows and changes this::

    course-tls status                         # which certificate, for which names, until when
    course-tls use --cert FILE --key FILE     # the institution's certificate (checked first)
    course-tls self-signed                    # back to the generated certificate
    course-tls front-end                      # behind a TLS front end
    course-tls renew                          # a new self-signed certificate now

Restart the hub afterwards (re-run ``deploy/install.sh``, or ``systemctl restart jupyterhub``).
"""
import argparse
import datetime
import ipaddress
import os
import pathlib
import socket
import sys

from . import paths
from . import settings as course_settings

#: How long a self-signed certificate is valid, and how long before its end it is made again.
SELF_SIGNED_DAYS = 825
RENEW_BEFORE_DAYS = 30
MODES = ("certificate", "self-signed", "front-end")


class TLSError(ValueError):
    """A certificate or key that cannot serve: unreadable, not PEM, not a pair, expired."""


def https_mode(server):
    """``"certificate"``, ``"self-signed"`` or ``"front-end"`` for the settings' ``server`` section."""
    if server.get("tls_front_end"):
        return "front-end"
    return "certificate" if server.get("ssl_cert") else "self-signed"


def self_signed_files(state_dir):
    """The generated certificate and its key, in the state folder: ``(certificate, key)``."""
    folder = pathlib.Path(state_dir) / paths.TLS_DIR
    return folder / paths.SELF_SIGNED_CERT, folder / paths.SELF_SIGNED_KEY


def certificate_files(server):
    """The certificate and key the hub serves with these ``server`` settings, or None (front end)."""
    mode = https_mode(server)
    if mode == "front-end":
        return None
    if mode == "certificate":
        return pathlib.Path(server["ssl_cert"]), pathlib.Path(server["ssl_key"])
    return self_signed_files(server["state_dir"])


def machine_names(ip=""):
    """What a self-signed certificate is made for: ``(DNS names, IP addresses)``.

    This machine's hostname and ``localhost``; the loopback addresses, and ``ip`` when the hub
    listens on one address only.
    """
    names = list(dict.fromkeys([socket.gethostname(), "localhost"]))
    addresses = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    if ip:
        address = ipaddress.ip_address(ip)
        if address not in addresses:
            addresses.append(address)
    return names, addresses


def _load(cert_path, key_path=None):
    """The certificate (and key) of PEM files, with errors that name the file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert_bytes = pathlib.Path(cert_path).read_bytes()
    except OSError as exc:
        raise TLSError(f"cert: cannot read {cert_path} ({exc.strerror})") from None
    try:
        certificate = x509.load_pem_x509_certificates(cert_bytes)[0]
    except ValueError:
        raise TLSError(f"cert: expected a PEM certificate (-----BEGIN CERTIFICATE-----) in {cert_path}, "
                       "got something else") from None
    if key_path is None:
        return certificate, None
    try:
        key_bytes = pathlib.Path(key_path).read_bytes()
    except OSError as exc:
        raise TLSError(f"key: cannot read {key_path} ({exc.strerror})") from None
    try:
        key = serialization.load_pem_private_key(key_bytes, password=None)
    except (ValueError, TypeError):
        raise TLSError(f"key: expected an unencrypted PEM private key in {key_path}, got something else "
                       "(a key with a passphrase cannot be read at boot)") from None
    return certificate, key


def describe(cert_path):
    """``{"names": [...], "not_after": datetime}`` of a PEM certificate."""
    from cryptography import x509

    certificate, _ = _load(cert_path)
    try:
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = alternative.get_values_for_type(x509.DNSName) + [
            str(a) for a in alternative.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = [a.value for a in certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    return {"names": names, "not_after": certificate.not_valid_after_utc}


def check_pair(cert_path, key_path, now=None):
    """Check that ``cert_path`` and ``key_path`` can serve HTTPS together; return the certificate's
    description (:func:`describe`).

    Raises
    ------
    TLSError
        If a file cannot be read or parsed, the key is not the certificate's, or the certificate
        has expired; the message names the file and what was expected.
    """
    from cryptography.hazmat.primitives import serialization

    certificate, key = _load(cert_path, key_path)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, public)
            != certificate.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise TLSError(f"key: expected the private key of {cert_path}, got the key of another certificate "
                       f"({key_path})")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if certificate.not_valid_after_utc <= now:
        raise TLSError(f"cert: {cert_path} expired on {certificate.not_valid_after_utc:%Y-%m-%d}")
    return describe(cert_path)


def make_self_signed(state_dir, ip="", now=None):
    """Make a new self-signed certificate and key in the state folder; return their paths.

    An ECDSA P-256 key (mode 0600), valid :data:`SELF_SIGNED_DAYS` days, for :func:`machine_names`.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    cert_path, key_path = self_signed_files(state_dir)
    cert_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    names, addresses = machine_names(ip)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, names[0]),
                         x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "course hub, self-signed")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName([*map(x509.DNSName, names), *map(x509.IPAddress, addresses)]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    new_key, new_cert = (path.with_name(path.name + ".new") for path in (key_path, cert_path))
    # The key is created 0600, so it is never readable by others, not even for a moment.
    descriptor = os.open(new_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    new_cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    new_key.replace(key_path)
    new_cert.replace(cert_path)
    return cert_path, key_path


def why_renew(state_dir, ip="", now=None):
    """Why the self-signed certificate must be made (again), or None when it can serve on."""
    cert_path, key_path = self_signed_files(state_dir)
    if not cert_path.exists() or not key_path.exists():
        return "there is none yet"
    now = now or datetime.datetime.now(datetime.timezone.utc)
    try:
        info = check_pair(cert_path, key_path, now)
    except TLSError as exc:
        return str(exc)
    if info["not_after"] - now < datetime.timedelta(days=RENEW_BEFORE_DAYS):
        return f"it expires on {info['not_after']:%Y-%m-%d}"
    names, addresses = machine_names(ip)
    if not set(names + list(map(str, addresses))) <= set(info["names"]):
        return f"it was made for {', '.join(info['names'])}, not for this machine's {', '.join(names)}"
    return None


def ensure_self_signed(state_dir, ip="", log=print):
    """Make the self-signed certificate when :func:`why_renew` says so; return ``(certificate, key)``."""
    reason = why_renew(state_dir, ip)
    if reason is None:
        return self_signed_files(state_dir)
    files = make_self_signed(state_dir, ip)
    log(f"course-hub: made a self-signed certificate in {files[0]} ({reason})", flush=True)
    return files


def update_site_settings(changes, site=None):
    """Write ``changes`` (``{"server": {...}}``; None removes a key) into the site settings file,
    keeping everything else in it, comments included; return the file.

    The result is loaded and checked before it replaces the file: a change that makes the
    settings invalid raises :class:`course_settings.SettingsError` and changes nothing.
    """
    from ruamel.yaml import YAML

    site = pathlib.Path(site or course_settings.site_path() or paths.SITE_SETTINGS)
    yaml = YAML()  # round trip: the operator's comments and order stay
    document = yaml.load(site.read_text()) if site.exists() else None
    if document is None:
        document = {}
    for section, values in changes.items():
        if document.get(section) is None:
            document[section] = {}
        for key, value in values.items():
            if value is None:
                document[section].pop(key, None)
            else:
                document[section][key] = value
        if not document[section]:
            del document[section]
    site.parent.mkdir(parents=True, exist_ok=True)
    candidate = site.with_name(site.name + ".new")
    with open(candidate, "w") as handle:
        yaml.dump(document, handle)
    try:
        course_settings.load_settings(candidate)
    except course_settings.SettingsError:
        candidate.unlink()
        raise
    candidate.replace(site)
    return site


def main(argv=None):
    """Command-line entry point (``course-tls``)."""
    parser = argparse.ArgumentParser(prog="course-tls", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="action", required=True)
    commands.add_parser("status", help="which certificate the hub serves, for which names, until when")
    use = commands.add_parser("use", help="serve the institution's certificate (written into the site settings)")
    use.add_argument("--cert", required=True, help="the certificate, PEM, with its chain")
    use.add_argument("--key", required=True, help="its private key, PEM, unencrypted")
    commands.add_parser("self-signed", help="serve a certificate this machine makes (the default)")
    commands.add_parser("front-end", help="a TLS front end holds the certificate: plain HTTP on 127.0.0.1")
    commands.add_parser("renew", help="make a new self-signed certificate now")
    args = parser.parse_args(argv)
    try:
        server = course_settings.for_this_server()["server"]
        if args.action == "use":
            cert, key = pathlib.Path(args.cert).resolve(), pathlib.Path(args.key).resolve()
            info = check_pair(cert, key)
            site = update_site_settings({"server": {"ssl_cert": str(cert), "ssl_key": str(key), "tls_front_end": None}})
            print(f"course-tls: the hub serves {cert} (for {', '.join(info['names'])}, until "
                  f"{info['not_after']:%Y-%m-%d}); written into {site}; restart the hub to apply it")
        elif args.action in ("self-signed", "front-end"):
            front = args.action == "front-end"
            site = update_site_settings({"server": {"ssl_cert": None, "ssl_key": None,
                                                    "tls_front_end": True if front else None}})
            print(f"course-tls: {'behind a TLS front end, plain HTTP on 127.0.0.1' if front else 'a self-signed certificate'}"
                  f"; written into {site}; restart the hub to apply it")
        elif args.action == "renew":
            cert, _ = make_self_signed(server["state_dir"], server["ip"])
            print(f"course-tls: made a new self-signed certificate {cert}; restart the hub to serve it")
        else:
            mode = https_mode(server)
            files = certificate_files(server)
            if files is None:
                print("course-tls: front-end: a TLS front end holds the certificate; the hub listens on 127.0.0.1")
            elif mode == "self-signed" and not files[0].exists():
                print(f"course-tls: self-signed: none made yet (the hub makes {files[0]} when it starts)")
            else:
                info = describe(files[0])
                print(f"course-tls: {mode}: {files[0]}, for {', '.join(info['names'])}, until "
                      f"{info['not_after']:%Y-%m-%d}")
    except (TLSError, course_settings.SettingsError, OSError) as exc:
        print(f"course-tls: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
