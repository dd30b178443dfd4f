"""Secrets in a tracking URI never leave the driver's memory.

`http://user:password@host:5000` works as a tracking URI, but everything collapsetune
writes or prints (the resolved sweep in the results folder and on the parent run, Ray's
pickled experiment, the terminal) carries `redact_uri(uri)` instead: userinfo removed from
http(s) URIs, the password replaced by `***` in database URIs, and secret-looking query
values (token, password, key, secret, ...) replaced by `***`. A resumed sweep gets the
secret back the way MLflow documents it: MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD
(or MLFLOW_TRACKING_TOKEN) for a server, MLFLOW_TRACKING_URI for a database URI.

Example:
    >>> redact_uri("http://ann:s3cret@mlflow.example:5000")
    'http://mlflow.example:5000'
    >>> redact_uri("postgresql://ann:s3cret@db/mlflow?sslmode=require&password=x")
    'postgresql://ann:***@db/mlflow?sslmode=require&password=***'
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from collapsetune.errors import SpecError

REDACTED = "***"
_SECRET_QUERY = re.compile(r"token|passw|secret|key|auth|credential|signature|sig$", re.I)


def redact_uri(uri: str | None) -> str | None:
    """The URI with its credentials taken out (see the module docstring); others unchanged."""
    if not uri or "://" not in uri:
        return uri
    parts = urlsplit(uri)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if parts.scheme in ("http", "https"):
            netloc = host
        else:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{user}@{host}"
    query = parts.query
    if query and any(_SECRET_QUERY.search(k) for k, _ in parse_qsl(query, keep_blank_values=True)):
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, REDACTED if _SECRET_QUERY.search(k) else v) for k, v in pairs], safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return uri  # nothing secret; urlunsplit would also rewrite sqlite:////abs as sqlite://abs
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def live_uri(stored: str) -> str:
    """The URI to connect with, given the redacted one a results folder kept.

    A URI with `***` needs MLFLOW_TRACKING_URI set to the full URI (its redacted form must
    match, so a stray variable never sends a sweep's runs to another store).
    """
    if REDACTED not in stored:
        return stored
    env = os.environ.get("MLFLOW_TRACKING_URI", "")
    if env and redact_uri(env) == stored:
        return env
    raise SpecError(
        f"the tracking URI {stored} had a password, which collapsetune never stores; set "
        "MLFLOW_TRACKING_URI to the full URI in this shell and run the command again",
        key="mlflow.tracking_uri",
    )


def client_uri(uri: str) -> str:
    """The URI to hand MLflow in the driver: an http(s) URI's user and password move to
    MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (MLflow's documented way, and how it
    sends them), so MLflow never prints or logs them as part of the URI. Call it after Ray
    has started: its worker processes must not inherit them."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return uri
    userinfo = parts.netloc.rsplit("@", 1)[0]
    user, _, password = userinfo.partition(":")
    os.environ.setdefault("MLFLOW_TRACKING_USERNAME", unquote(user))
    if password:
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", unquote(password))
    return redact_uri(uri)
