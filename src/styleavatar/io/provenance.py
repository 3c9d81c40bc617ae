"""How every video the project generates says that it is synthetic (checked by :mod:`.verify`).

Three layers, each readable without the others:

1. **The pixel mark** (:mod:`.watermark`): in every frame; survives re-encoding, scaling, cropping and
   screenshots within the limits measured in BENCHMARKS.md ("provenance"). It cannot be switched off.
2. **A plain mp4 metadata tag** (``comment``): read by ffprobe, players and file browsers; lost on re-encoding.
3. **A signed C2PA manifest** (``c2pa-python``): an action ``c2pa.created`` with digitalSourceType
   ``trainedAlgorithmicMedia``, bound to the file's bytes; read by any C2PA-aware tool. It is signed with the
   certificate the user gives, or with a local one made on first use (see :func:`local_credentials`), which
   proves only that the file is unchanged since this machine wrote it, not who wrote it.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from ..config import ProvenanceOptions
from ..errors import UserError
from .atomic import atomic_file
from .watermark import Payload

SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
"""IPTC digital source type of media made by a trained model (what C2PA and the EU AI Act's marking ask for)."""
TAG_PREFIX = "AI-generated (synthetic) video made with styleavatar"
"""Start of the ``comment`` metadata tag of every video written."""
GENERATOR = "styleavatar"
"""Name of this software in the C2PA manifest (claim generator and software agent)."""
LOCAL_SIGNER = "styleavatar local signer"
"""Common name of the certificate made on first use when the user gives none."""


@dataclass(frozen=True)
class Mark:
    """What a writer of synthetic video puts in: the payload of the pixel mark, and how to sign."""

    payload: Payload
    options: ProvenanceOptions = ProvenanceOptions()

    @classmethod
    def for_avatar(cls, avatar_sha256: str | None, options: ProvenanceOptions = ProvenanceOptions()) -> "Mark":
        return cls(Payload.for_avatar(avatar_sha256), options)

    def describe(self) -> str:
        """For a command's summary: what the written video carries."""
        o = self.options
        signed = ("no C2PA manifest" if not o.c2pa else
                  f"C2PA manifest signed with {o.sign_cert}" if o.sign_cert else "C2PA manifest signed with the local key")
        return f"marked as synthetic (avatar {self.payload.avatar_prefix}; {signed})"

    def tag(self) -> str:
        """The ``comment`` metadata tag."""
        return f"{TAG_PREFIX}; avatar {self.payload.avatar_prefix}; digitalSourceType {SOURCE_TYPE}"


def local_credentials(folder: Path) -> tuple[Path, Path]:
    """(certificate chain PEM, private key PEM) of this machine's local signer in ``folder``, made on first use.

    A local certificate authority (ES256, 10 years) signs a signing certificate (digitalSignature, e-mail
    protection usage, as C2PA requires of a signer). Nobody else trusts this authority: C2PA readers report
    the manifest as intact but its signer as untrusted."""
    chain, key = folder / "signer-chain.pem", folder / "signer-key.pem"
    if chain.exists() and key.exists():
        return chain, key
    from cryptography.hazmat.primitives import serialization

    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _certificate("styleavatar local certificate authority", None)
    leaf_key, leaf_cert = _certificate(LOCAL_SIGNER, (ca_key, ca_cert))
    pem = serialization.Encoding.PEM
    with atomic_file(key, suffix=".pem") as tmp:
        tmp.write_bytes(leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        os.chmod(tmp, 0o600)
    with atomic_file(chain, suffix=".pem") as tmp:
        tmp.write_bytes(leaf_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    return chain, key


def _certificate(name: str, issuer):
    """A new P-256 key and its certificate: a CA (``issuer`` None, self-signed) or a signer issued by
    ``issuer`` = (key, certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "styleavatar (local)")])
    is_ca = issuer is None
    sign_key, issuer_name = (key, subject) if is_ca else (issuer[0], issuer[1].subject)
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = dict(digital_signature=not is_ca, content_commitment=False, key_encipherment=False,
                 data_encipherment=False, key_agreement=False, key_cert_sign=is_ca, crl_sign=is_ca,
                 encipher_only=False, decipher_only=False)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=0 if is_ca else None), critical=True)
               .add_extension(x509.KeyUsage(**usage), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if not is_ca:
        builder = (builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[0].public_key()),
                                  critical=False))
    return key, builder.sign(sign_key, hashes.SHA256())


def make_signer(options: ProvenanceOptions):
    """The C2PA signer of ``options`` (the user's certificate, or the local one); a clear error for a missing
    file or a key that does not fit. Writers make it before their first frame, so a bad key costs nothing."""
    import c2pa

    from .weights import cache_dir

    if (options.sign_cert is None) != (options.sign_key is None):
        raise UserError("give both --sign-cert and --sign-key, or neither (then a local key is used)")
    if options.sign_cert is not None:
        chain, key = Path(options.sign_cert), Path(options.sign_key)
        for path in (chain, key):
            if not path.is_file():
                raise UserError(f"no signing file at {path}")
    else:
        chain, key = local_credentials(cache_dir() / "c2pa")
    try:
        return c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", chain.read_bytes(), key.read_bytes(), None))
    except Exception as exc:  # c2pa's own error types carry the reason
        raise UserError(f"cannot sign with {chain} / {key}: {exc}") from None


def manifest(mark: Mark, title: str) -> dict:
    """The C2PA manifest definition written into each video."""
    from .. import __version__

    return {
        "claim_generator_info": [{"name": GENERATOR, "version": __version__}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{
                "action": "c2pa.created", "digitalSourceType": SOURCE_TYPE,
                "softwareAgent": {"name": GENERATOR, "version": __version__}}]}},
            {"label": "org.styleavatar.watermark", "data": {
                "format_version": mark.payload.version, "avatar_prefix": mark.payload.avatar_prefix,
                "synthetic": mark.payload.synthetic}},
        ],
    }


def sign_mp4(path: Path, mark: Mark, title: str, signer) -> None:
    """Embed a C2PA manifest signed by ``signer`` (:func:`make_signer`, closed here) into the mp4 at ``path``,
    in place (through a temporary sibling)."""
    import c2pa

    signed = path.with_name(path.name + ".c2pa")
    try:
        with c2pa.Builder(manifest(mark, title)) as builder, open(path, "rb") as src, open(signed, "wb") as dst:
            builder.sign(signer, "video/mp4", src, dst)
        os.replace(signed, path)
    finally:
        signed.unlink(missing_ok=True)
        signer.close()
