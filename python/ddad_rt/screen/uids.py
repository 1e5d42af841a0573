"""DICOM identifiers in screening outputs. Study, Series and SOP Instance UIDs identify a
patient's studies (DICOM PS3.15 Annex E lists them among the attributes a de-identification
profile must replace), so a site may not want them in results that leave the PACS:

* ``keep``: as in the files (the default: results join back to the archive);
* ``pseudonymize``: each UID replaced by ``2.25.<128-bit HMAC-SHA256 of it under a per-site
  secret key>``, a valid UID (PS3.5 B.2). The same key gives the same pseudonym in every run,
  so studies still group and a site holding the key and the archive can link results back;
  nobody else can;
* ``drop``: removed (each file is then its own study, and no Secondary Capture is written:
  it would have to join the source study).

SOPClassUID names a kind of object, not a patient's, and is kept.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from ddad_rt.errors import InputError

MODES = ("keep", "pseudonymize", "drop")
IDENTIFYING_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
#: Fewest bytes a key file must hold (128 bits).
MIN_KEY_BYTES = 16


def pseudonym(uid: str, key: bytes) -> str:
    """The pseudonymous UID of ``uid`` under ``key``."""
    digest = hmac.new(key, uid.strip().encode("ascii", "replace"), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def protect(dicom: dict[str, str], mode: str, key: bytes | None) -> dict[str, str]:
    """``dicom`` with its identifying UIDs kept, pseudonymised or dropped."""
    if mode == "keep":
        return dicom
    out = dict(dicom)
    for attr in IDENTIFYING_UIDS:
        if attr not in out:
            continue
        if mode == "drop":
            del out[attr]
        else:
            out[attr] = pseudonym(out[attr], key)
    return out


def read_key(path: str | Path) -> bytes:
    """A per-site pseudonymisation key: the bytes of a file (e.g. ``head -c 32 /dev/urandom
    > site.key``, kept secret and never next to the results)."""
    try:
        key = Path(path).read_bytes()
    except OSError as e:
        msg = f"cannot read the UID key file {path}: {e.strerror or e}"
        raise InputError(msg) from None
    if len(key) < MIN_KEY_BYTES:
        msg = (f"the UID key file {path} holds {len(key)} bytes; use at least {MIN_KEY_BYTES} "
               "random bytes, e.g. head -c 32 /dev/urandom > site.key")
        raise InputError(msg)
    return key


def key_id(key: bytes | None) -> str:
    """A fingerprint of the key (not the key): a resumed run must use the same one."""
    return "" if key is None else hashlib.sha256(b"ddad-rt uid key\0" + key).hexdigest()[:16]


def check(mode: str, key: bytes | None) -> None:
    if mode not in MODES:
        msg = f"uids must be one of {', '.join(MODES)}, got {mode!r}"
        raise InputError(msg)
    if mode == "pseudonymize" and key is None:
        msg = "--uids pseudonymize needs the site's key: --uid-key-file FILE"
        raise InputError(msg)
