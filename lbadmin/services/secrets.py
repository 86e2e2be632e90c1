"""Encryption at rest for private keys: Fernet (AES-128-CBC + HMAC-SHA256) with a key file
kept outside the database (LBADMIN_SECRETS_KEY_FILE, mode 0600), so a database dump or backup
alone never reveals a private key."""

import os
from pathlib import Path

from cryptography.fernet import Fernet
from django.conf import settings


def _fernet() -> Fernet:
    path = Path(settings.LBADMIN_SECRETS_KEY_FILE)
    try:
        return Fernet(path.read_bytes().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return Fernet(path.read_bytes().strip())
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return Fernet(key)


def secret_encrypt(plain: bytes) -> bytes:
    return _fernet().encrypt(plain)


def secret_decrypt(token: bytes) -> bytes:
    return _fernet().decrypt(bytes(token))
