"""Signed artifact and engine folders: an ECDSA P-256 signature over the relative path and
SHA-256 of every file in the folder, so an operator can tell, before switching to an uplinked
model, that every file is the one the key holder signed and that nothing was added or removed.

The statement signed is canonical JSON (sorted keys, no spaces, ASCII):
``{"files":{"golden/x.npy":"<sha256>",...},"format":"tdpcr-edge-signed-folder/1"}``; the
signature file records it, the key's fingerprint and the signature, and is itself left out.

``cryptography`` is imported inside the functions: importing this module costs nothing, and
only the commands that sign or verify pay for it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

from .contract import file_sha256
from .errors import CheckpointError, ConfigError, IntegrityError
from .io_utils import atomic_path

SIGNATURE = "signature.json"
FORMAT = "tdpcr-edge-signed-folder/1"
ALGORITHM = "ecdsa-p256-sha256"
MAKE_KEY = "openssl ecparam -name prime256v1 -genkey -noout -out key.pem"


def digests(folder: Path) -> dict[str, str]:
    """{relative POSIX path: sha256 hex} of every file under ``folder``, the signature file left out."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: folder not found (an artifact folder from `tdpcr-edge export` or an engine folder)")
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in sorted(dirs) + sorted(files):
            path = Path(root, name)
            rel = path.relative_to(folder).as_posix()
            mode = path.lstat().st_mode
            # A link's target can change outside the folder, and a linked folder is not walked:
            # neither would be covered by what was signed.
            if stat.S_ISLNK(mode):
                raise IntegrityError(f"{path} is a symbolic link; a signed folder holds regular files only: copy the file in its place")
            if name in files and not stat.S_ISREG(mode):
                raise IntegrityError(f"{path} is not a regular file; a signed folder holds regular files only: remove it")
            if name in files and rel != SIGNATURE:
                out[rel] = file_sha256(path)
    return dict(sorted(out.items()))


def statement(files: dict[str, str]) -> bytes:
    """The bytes signed: canonical, so a verifier rebuilds them exactly from the file list."""
    return json.dumps({"files": files, "format": FORMAT}, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign(folder: Path, key: Path) -> Path:
    """Sign every file of ``folder`` with the EC P-256 private key in ``key`` (SEC1 or PKCS#8
    PEM); returns the signature file written into the folder."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    folder = Path(folder)
    private = _private_key(Path(key))
    files = digests(folder)
    if not files:
        raise CheckpointError(f"{folder} holds no files to sign; sign an artifact folder from `tdpcr-edge export` or an engine folder")
    signature = private.sign(statement(files), ec.ECDSA(hashes.SHA256()))
    record = {
        "format": FORMAT,
        "algorithm": ALGORITHM,
        "key_fingerprint": fingerprint(private.public_key()),
        "files": files,
        "signature": base64.b64encode(signature).decode(),
    }
    out = folder / SIGNATURE
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return out


def verify_signature(folder: Path, public_key: Path) -> dict:
    """Check that ``folder`` is signed by ``public_key``'s private key and that its files are
    exactly those signed; IntegrityError (one line naming the file) when not. Returns what was
    verified: folder, files, key fingerprint, signature file."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    folder = Path(folder)
    public = _public_key(Path(public_key))
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: folder not found (an artifact folder from `tdpcr-edge export` or an engine folder)")
    sig_path = folder / SIGNATURE
    resign = f"re-sign it with `tdpcr-edge sign {folder} --key KEY`"
    if not sig_path.is_file():
        raise IntegrityError(f"{folder} is not signed (no {SIGNATURE}); sign it with `tdpcr-edge sign {folder} --key KEY`")
    try:
        record = json.loads(sig_path.read_text())
        signed, signature = record["files"], base64.b64decode(record["signature"], validate=True)
        if record.get("format") != FORMAT or not isinstance(signed, dict):
            raise ValueError(f"format {record.get('format')!r}, expected {FORMAT!r}")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{sig_path} is not a tdpcr-edge signature ({exc}); {resign}") from None
    mine = fingerprint(public)
    # The signature is checked over the recorded list before any file is read: a wrong key
    # fails at once, and every difference reported below comes from an authentic list.
    try:
        public.verify(signature, statement(signed), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        claimed = str(record.get("key_fingerprint", "?"))[:16]
        raise IntegrityError(
            f"{sig_path} does not verify with {public_key} (fingerprint {mine[:16]}; the signature names key {claimed}): "
            f"verify with the signer's public key, or {resign} if the signature file was altered"
        ) from None
    found = digests(folder)
    problems = [f"{folder / p} changed since signing" for p in sorted(signed) if p in found and found[p] != signed[p]]
    problems += [f"{folder / p} was removed after signing" for p in sorted(set(signed) - set(found))]
    problems += [f"{folder / p} was added after signing" for p in sorted(set(found) - set(signed))]
    if problems:
        more = f" (and {len(problems) - 1} more difference{'s' * (len(problems) > 2)})" if len(problems) > 1 else ""
        raise IntegrityError(f"{problems[0]}{more}: nothing is loaded; restore the signed files, or {resign} if the change is yours")
    return {"folder": str(folder), "files": len(found), "key_fingerprint": mine, "algorithm": ALGORITHM, "signature": str(sig_path)}


def fingerprint(key) -> str:
    """SHA-256 of the public key's DER SubjectPublicKeyInfo, hex: what
    `openssl ec -pubin -in pub.pem -outform DER | sha256sum` prints."""
    from cryptography.hazmat.primitives import serialization

    public = key.public_key() if hasattr(key, "public_key") else key
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _read_key(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found; make a key pair with `{MAKE_KEY}`") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror})") from None


def _private_key(path: Path):
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    data = _read_key(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(
            f"{path} is encrypted; sign with an unencrypted key (`openssl ec -in {path} -out plain.pem` decrypts a copy)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{path} is not a PEM private key; make an EC P-256 key with `{MAKE_KEY}`") from None
    _require_p256(key, path, "private key")
    return key


def _public_key(path: Path):
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    data = _read_key(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            f"{path} is not a PEM public key; export it from the signing key with `openssl ec -in key.pem -pubout -out pub.pem`"
        ) from None
    _require_p256(key, path, "public key")
    return key


def _require_p256(key, path: Path, what: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) and key.curve.name == "secp256r1":
        return
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        kind = f"EC {key.curve.name}"
    else:
        kind = type(key).__name__.lstrip("_").replace("PrivateKey", "").replace("PublicKey", "")
        kind += f", {key.key_size} bits" if getattr(key, "key_size", None) else ""
    raise ConfigError(f"{path} holds a key of type {kind}; a signing {what} must be EC P-256 (prime256v1): make one with `{MAKE_KEY}`")
