"""`tdpcr-edge sign`: sign an artifact or engine folder before it is uplinked."""

import json
from pathlib import Path
from typing import Annotated

import typer

from .console import console


def register(app: typer.Typer) -> None:
    @app.command()
    def sign(
        folder: Annotated[Path, typer.Argument(help="Artifact folder from `tdpcr-edge export`, or an engine folder.")],
        key: Annotated[Path, typer.Option(help="EC P-256 private key, PEM (`openssl ecparam -name prime256v1 -genkey -noout`).")],
    ) -> None:
        """Sign every file of the folder (relative path and SHA-256) with an EC P-256 key; the
        device checks it with `--public-key` before loading anything."""
        from ..signing import sign as sign_folder

        out = sign_folder(folder, key)
        record = json.loads(out.read_text())
        console.print(
            f"signed {len(record['files'])} files of {folder} with key {record['key_fingerprint'][:16]} (EC P-256): {out}",
            highlight=False,
        )
