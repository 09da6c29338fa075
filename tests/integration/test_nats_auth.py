"""An external NATS with authentication and TLS, configured the way users configure it."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from router.bus.connection import Bus
from router.config import settings as settings_mod
from router.model import events
from tests.support.natsserver import NatsServer


def make_tls(tmp_path):
    """A CA and a server certificate for 127.0.0.1."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nats")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


async def stores_an_event(settings: settings_mod.Settings, wait: float = 10.0) -> bool:
    bus = Bus(settings.nats, settings.bus)
    await bus.start(settings.nats.url)
    try:
        await bus.wait_ready(wait)
    except TimeoutError:
        await bus.close()
        return False
    try:
        stored = await bus.publish(events.make({"id": "auth-1", "source": "/t", "type": "t"}, {"ok": True}))
        return stored.seq == 1
    finally:
        await bus.close()


@pytest.mark.parametrize("server_args,env,works", [
    (("--user", "router", "--pass", "pw-1"), {"NATS__USER": "router", "NATS__PASSWORD": "pw-1"}, True),
    (("--user", "router", "--pass", "pw-1"), {"NATS__USER": "router", "NATS__PASSWORD": "wrong"}, False),
    (("--auth", "tok-1"), {"NATS__TOKEN": "tok-1"}, True),
    (("--auth", "tok-1"), {}, False),
])
async def test_user_password_and_token(tmp_path, server_args, env, works):
    server = NatsServer(tmp_path / "js", *server_args).start()
    try:
        settings = settings_mod.load(None, env={"TRIGGER_ROUTER_NATS__URL": server.url,
                                               **{f"TRIGGER_ROUTER_{k}": v for k, v in env.items()}})
        # A refused login keeps the bus retrying (and ingest answering 503); 3 s shows it never gets in.
        assert await stores_an_event(settings, wait=10.0 if works else 3.0) is works
    finally:
        server.stop()


async def test_tls_with_configured_ca(tmp_path):
    tls = make_tls(tmp_path)
    server = NatsServer(tmp_path / "js", "--tls", "--tlscert", str(tls["cert"]), "--tlskey", str(tls["key"]),
                        scheme="tls").start()
    try:
        settings = settings_mod.load(None, env={"TRIGGER_ROUTER_NATS__URL": server.url,
                                               "TRIGGER_ROUTER_NATS__TLS__CA_FILE": str(tls["ca"])})
        assert await stores_an_event(settings)
    finally:
        server.stop()
