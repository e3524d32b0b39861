"""Signed folders as an operator meets them: keys made by openssl, a folder shaped like an
artifact (no real export, to stay fast), every way it can differ from what was signed."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tdpcr_edge.errors import ConfigError, IntegrityError
from tdpcr_edge.signing import SIGNATURE, fingerprint, sign, verify_signature
from tests.helpers import run_main


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    key, pub = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    openssl("ec", "-in", str(key), "-pubout", "-out", str(pub))
    return key, pub


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    key, pub = key_pair(root, "ops")
    _, other_pub = key_pair(root, "other")
    return key, pub, other_pub


@pytest.fixture
def art(tmp_path) -> Path:
    art = tmp_path / "art"
    (art / "golden").mkdir(parents=True)
    (art / "model.onnx").write_bytes(bytes(range(256)) * 4096)  # 1 MiB: more than one read chunk
    (art / "manifest.json").write_text('{"precision": "int8"}\n')
    (art / "drift.json").write_text("{}\n")
    (art / "golden" / "input.npy").write_bytes(b"\x93NUMPY fake")
    return art


def test_the_key_openssl_writes_is_sec1(keys):
    assert keys[0].read_text().startswith("-----BEGIN EC PRIVATE KEY-----")


def test_sign_then_verify(art, keys):
    key, pub, _ = keys
    out = sign(art, key)
    assert out == art / SIGNATURE and out.is_file()
    assert not [p for p in art.iterdir() if p.name.endswith(".tmp")]
    info = verify_signature(art, pub)
    assert info["files"] == 4
    der = subprocess.run(["openssl", "ec", "-pubin", "-in", str(pub), "-outform", "DER"], check=True, capture_output=True).stdout
    assert info["key_fingerprint"] == hashlib.sha256(der).hexdigest()


def test_a_pkcs8_key_signs_too(art, keys, tmp_path):
    key, pub, _ = keys
    pkcs8 = tmp_path / "key8.pem"
    openssl("pkcs8", "-topk8", "-nocrypt", "-in", str(key), "-out", str(pkcs8))
    assert pkcs8.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    sign(art, pkcs8)
    assert verify_signature(art, pub)["files"] == 4


def test_one_byte_appended_names_the_file(art, keys):
    sign(art, keys[0])
    with open(art / "manifest.json", "ab") as f:
        f.write(b" ")
    with pytest.raises(IntegrityError, match="manifest.json changed since signing") as exc:
        verify_signature(art, keys[1])
    assert "\n" not in str(exc.value) and "tdpcr-edge sign" in str(exc.value)


def test_a_file_added_is_refused(art, keys):
    sign(art, keys[0])
    (art / "golden" / "extra.npy").write_bytes(b"x")
    with pytest.raises(IntegrityError, match="golden/extra.npy was added after signing"):
        verify_signature(art, keys[1])


def test_a_file_removed_is_refused(art, keys):
    sign(art, keys[0])
    (art / "drift.json").unlink()
    with pytest.raises(IntegrityError, match="drift.json was removed after signing"):
        verify_signature(art, keys[1])


def test_a_symbolic_link_is_refused_to_sign(art, keys, tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"weights that may change")
    (art / "golden" / "linked.bin").symlink_to(outside)
    with pytest.raises(IntegrityError, match="linked.bin is a symbolic link"):
        sign(art, keys[0])


def test_an_unsigned_folder_is_refused_with_the_hint(art, keys):
    with pytest.raises(IntegrityError, match=r"is not signed .*tdpcr-edge sign .* --key KEY"):
        verify_signature(art, keys[1])


def test_another_keys_public_key_is_refused(art, keys):
    sign(art, keys[0])
    with pytest.raises(IntegrityError, match="does not verify with") as exc:
        verify_signature(art, keys[2])
    assert str(keys[2]) in str(exc.value)


def test_an_altered_file_list_does_not_verify(art, keys):
    out = sign(art, keys[0])
    (art / "drift.json").write_text('{"changed": true}\n')
    record = json.loads(out.read_text())
    record["files"]["drift.json"] = hashlib.sha256((art / "drift.json").read_bytes()).hexdigest()
    out.write_text(json.dumps(record))
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_signature(art, keys[1])


def test_an_rsa_key_is_refused_in_one_line(art, tmp_path):
    rsa = tmp_path / "rsa.pem"
    openssl("genrsa", "-out", str(rsa), "2048")
    with pytest.raises(ConfigError, match=r"RSA.*must be EC P-256") as exc:
        sign(art, rsa)
    assert "\n" not in str(exc.value)
    assert not (art / SIGNATURE).exists()


def test_a_bad_public_key_is_a_config_error(art, keys, tmp_path):
    sign(art, keys[0])
    bad = tmp_path / "pub.pem"
    bad.write_text("not a key\n")
    with pytest.raises(ConfigError, match="pub.pem is not a PEM public key"):
        verify_signature(art, bad)


def test_fingerprint_of_a_private_key_is_its_public_keys(keys):
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(keys[0].read_bytes(), password=None)
    assert fingerprint(private) == fingerprint(private.public_key())


def test_cli_sign(art, keys, capsys, monkeypatch):
    code, out, err = run_main(["sign", art, "--key", keys[0]], capsys, monkeypatch)
    assert code == 0, err
    assert "signed 4 files" in out and str(art / SIGNATURE) in out
    assert verify_signature(art, keys[1])["files"] == 4


def test_cli_sign_missing_key_exits_2(art, tmp_path, capsys, monkeypatch):
    code, _, err = run_main(["sign", art, "--key", tmp_path / "missing.pem"], capsys, monkeypatch)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "missing.pem" in lines[0], err


def test_importing_signing_does_not_import_cryptography():
    code = "import sys, tdpcr_edge.signing; sys.exit('cryptography' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
