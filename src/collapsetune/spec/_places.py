"""The form of names and addresses a sweep hands to the outside world: the sweep name (a
folder and an MLflow experiment), `storage`, `mlflow.tracking_uri` and the Ray `address`
(MLflow param names: `collapsetune.tracking`). Only the form is checked here, with no I/O; whether the places answer is
`collapsetune.preflight`'s job, at launch.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from collapsetune.credentials import redact_uri
from collapsetune.escape import quoted as _shown

# The sweep name becomes a results folder `<name>-<YYYYmmdd-HHMMSS>` (on a local disk or in an
# object store URI) and an MLflow experiment name: letters, digits, `_`, `.`, `-`, no
# leading dot or dash, and short enough for every filesystem's 255-byte file names.
NAME_MAX = 100
_NAME = re.compile(r"\w[\w.-]*")

# pyarrow.fs.FileSystem.from_uri, which Ray uses for `storage_path`, knows these schemes.
STORAGE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+")  # two or more letters: `C:` is a drive, not a scheme

# MLflow's tracking store registry (mlflow.tracking._tracking_service.utils) plus SQLAlchemy's
# `dialect+driver` for the database stores.
DATABASES = ("sqlite", "postgresql", "mysql", "mssql")
TRACKING_FORMS = ("sqlite:///mlflow.db", "sqlite:////abs/path/mlflow.db", "http(s)://host:port",
                  "postgresql|mysql|mssql://user@host:port/db", "databricks")
_DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mssql": 1433}


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a sweep name, or None."""
    if len(name) > NAME_MAX or not _NAME.fullmatch(name):
        return (f"expected a name usable as a folder and an MLflow experiment: letters, digits, _, . and -, "
                f"starting with a letter or digit, at most {NAME_MAX} characters; got {_shown(name)}")
    return None


def is_uri(location: str) -> bool:
    return "://" in location


def storage_problem(storage: str) -> str | None:
    """Why `storage` is not a folder or a URI Ray can write to, or None."""
    if not storage.strip() or "\x00" in storage:
        return f"expected a folder or a URI, got {_shown(storage)}"
    if not is_uri(storage):
        if storage.startswith("~"):
            try:
                Path(storage).expanduser()
            except RuntimeError:
                return f"cannot expand {storage.split('/', 1)[0]!r}: no such user; expected ~/folder or a path"
        scheme = storage.split(":", 1)[0]
        if ":" in storage and _SCHEME.fullmatch(scheme) and scheme.lower() in STORAGE_SCHEMES:
            return f"looks like a URI without '//'; expected e.g. {scheme}://bucket/results"
        return None
    scheme = storage.split("://", 1)[0].lower()
    if scheme not in STORAGE_SCHEMES:
        return (f"unknown URI scheme {scheme!r}; expected a local folder or a URI with one of "
                f"{', '.join(s + '://' for s in STORAGE_SCHEMES)}")
    if scheme == "file" and not storage[len("file://"):].startswith("/"):
        return f"a file:// URI needs an absolute path, e.g. file:///data/results; got {_shown(storage)}"
    return None


def tracking_problem(uri: str) -> str | None:
    """Why MLflow could not open `uri` as a tracking store, or None (credentials never shown)."""
    expected = f"expected one of the forms {', '.join(TRACKING_FORMS)}"
    if "\x00" in uri or not uri.strip():
        return f"{expected}; got {redact(uri)!r}"
    scheme = uri_scheme(uri)
    path = uri[len("sqlite:///"):] if scheme == "sqlite" else urlsplit(uri).path if scheme == "file" else uri
    if path.startswith("~") and scheme in ("", "file", "sqlite"):  # MLflow and SQLite take "~" literally
        return f"MLflow does not expand ~ (it would make a folder named '~'); write the full path, got {redact(uri)!r}"
    if (not scheme and uri != "databricks") or scheme == "file":
        slip = re.match(r"(https?|sqlite|file|postgresql|mysql|mssql)//", uri, re.IGNORECASE)
        if slip:
            return f"looks like {slip.group(1)}:// without its ':'; {expected}; got {redact(uri)!r}"
        return None if file_store_allowed() else (
            f"MLflow 3 no longer opens a folder as a tracking store (its file store is in maintenance mode and "
            f"refuses to start); got {redact(uri)!r}: log to a database instead, e.g. sqlite:///mlflow.db "
            "(`mlflow migrate-filestore` moves an existing ./mlruns), or set MLFLOW_ALLOW_FILE_STORE=true")
    if not scheme:
        return None  # databricks, MLflow's one bare name
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        path = uri[len("sqlite:///"):].split("?", 1)[0] if uri.lower().startswith("sqlite:///") else ""
        if path.strip() in ("", ":memory:"):  # in memory: every trial's runs would vanish with the driver
            return (f"expected sqlite:///relative/path.db or sqlite:////absolute/path.db (three or four "
                    f"slashes, then a file), got {redact(uri)!r}")
        return None
    if base in ("http", "https") or base in DATABASES:
        if "+" in scheme and base not in DATABASES:
            return f"{expected}; got {redact(uri)!r}"
        try:
            host_port(uri)
        except ValueError as exc:
            return f"{exc}; {expected}"
        return None
    if scheme in ("databricks", "databricks-uc", "uc"):
        return None
    return f"unknown tracking URI scheme {scheme!r}; {expected}"


def file_store_allowed() -> bool:
    """Whether MLflow opens a folder as a tracking store: since MLflow 3.7 only with the
    opt-out MLFLOW_ALLOW_FILE_STORE=true (mlflow/store/tracking/file_store.py reads it so)."""
    return os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() in ("true", "1")


def uri_scheme(uri: str) -> str:
    """The lower-case scheme of a URI (`sqlite`, `postgresql+psycopg2`), '' for a plain path."""
    scheme = uri.split(":", 1)[0] if ":" in uri else ""
    return scheme.lower() if _SCHEME.fullmatch(scheme) else ""


def address_problem(address: str) -> str | None:
    """Why Ray could not connect to `address`, by its form alone, or None."""
    if address in ("auto", "local"):
        return None
    word = address.split(":", 1)[0]
    if word in ("auto", "local"):  # Ray reads only the bare word: `auto:1` would be a host named auto
        return (f"{word} takes no port, got {_shown(address)}; expected null (a private local Ray), auto "
                "(the cluster `ray start` started on this machine), host:port (e.g. 10.0.0.5:6379) or "
                "ray://host:port")
    if not address.strip():
        return "expected null (a private local Ray), auto, host:port or ray://host:port, got ''"
    try:
        ray_host_port(address)
    except ValueError as exc:
        return (f"{exc}; expected null (a private local Ray), auto (the cluster `ray start` "
                "started on this machine), host:port (e.g. 10.0.0.5:6379) or ray://host:port")
    return None


def ray_host_port(address: str) -> tuple[str, int]:
    """(host, port) of a Ray address host:port or ray://host:port; ValueError otherwise."""
    uri = address if address.startswith("ray://") else f"//{address}"
    if _split(uri).path not in ("", "/"):
        raise ValueError(f"expected only host:port, got {address!r}")
    return host_port(uri, port_required=True, shown=address)


def host_port(uri: str, *, port_required: bool = False, shown: str | None = None) -> tuple[str, int]:
    """(host, port) of a URI such as http://h:5000 or //h:6379; ValueError naming what is missing.

    Without a port in the URI the scheme's usual one is taken (http 80, postgresql 5432, ...),
    unless `port_required`. Credentials in the URI are never repeated in an error.
    """
    parts = _split(uri)
    shown = redact(shown or uri)
    try:
        port = parts.port
    except ValueError:
        port = 0
    if not parts.hostname:
        raise ValueError(f"no host in {shown!r}")
    if port is None and not port_required:
        port = _DEFAULT_PORTS.get(parts.scheme.split("+", 1)[0])
    if port is None:
        raise ValueError(f"no port in {shown!r}")
    if not 0 < port < 65536:
        raise ValueError(f"the port in {shown!r} is not a number from 1 to 65535")
    return parts.hostname, port


def redact(uri: str) -> str:
    """`uri` without its credentials, for messages and logs (collapsetune.credentials)."""
    try:
        return redact_uri(uri)
    except ValueError:  # not even urlsplit can read it: hide everything before the host
        return re.sub(r"(?<=://)[^/@]*@", "***@", uri)


def _split(uri: str) -> SplitResult:
    try:
        return urlsplit(uri)
    except ValueError:  # e.g. an unbalanced [ in an IPv6 host
        raise ValueError(f"cannot read a host and port in {redact(uri)!r}") from None
