"""``asyncdb.Settings``: connection settings from ``ASYNCDB_*`` variables and ``.env``
(pydantic-settings, extra ``models``).

>>> import os, asyncio, asyncdb
>>> os.environ["ASYNCDB_URL"] = "memory://"
>>> settings = asyncdb.Settings(cursor_secret="s3cret")
>>> settings.cursor_secret
SecretStr('**********')
>>> async def main():
...     async with asyncdb.connect(settings=settings) as db:
...         return db.backend
>>> asyncio.run(main())
'memory'
>>> del os.environ["ASYNCDB_URL"]

The URL, the cache URL, the cursor secret and the keyring are ``SecretStr`` (a URL carries a
password or an account key): they never appear in a repr, a log line or an error message;
``settings.url.get_secret_value()`` gives the value.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from asyncdb.errors import ConfigurationError

# The backends whose stores take pool sizes, and the option names they take them by.
_POOL_OPTIONS: dict[str, tuple[str, str]] = {
    "postgresql": ("min_size", "max_size"),
    "postgres": ("min_size", "max_size"),
}


class Settings(BaseSettings):
    """What ``asyncdb.connect(settings=...)`` needs, read from the environment:
    ``ASYNCDB_URL``, ``ASYNCDB_CACHE_URL``, ``ASYNCDB_POOL_MIN_SIZE``, ``ASYNCDB_POOL_MAX_SIZE``,
    ``ASYNCDB_TIMEOUT``, ``ASYNCDB_CURSOR_SECRET``, ``ASYNCDB_KEYRING``, and a ``.env`` file in
    the working directory (``Settings(_env_file="path/.env")`` for another one). Keyword
    arguments win over both.
    """

    model_config = SettingsConfigDict(
        env_prefix="ASYNCDB_",
        env_file=".env",
        extra="ignore",
        hide_input_in_errors=True,  # a rejected value may be a secret: never echo it
        env_ignore_empty=True,  # ASYNCDB_CACHE_URL= means no cache
        frozen=True,
    )

    url: SecretStr | None = None
    cache_url: SecretStr | None = None
    pool_min_size: int | None = Field(default=None, ge=0)
    pool_max_size: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    cursor_secret: SecretStr | None = None
    keyring: SecretStr | None = None

    def connect_options(self, url: str | None = None) -> tuple[str, dict[str, Any]]:
        """The URL (``url`` if given, else these settings') and the ``connect()`` options
        these settings stand for.

        Pool sizes go to the backends that keep a pool (PostgreSQL); set for another backend
        they are a ConfigurationError rather than silently ignored."""
        if url is None:
            if self.url is None:
                raise ConfigurationError(
                    "no database URL: set ASYNCDB_URL (environment or .env) or pass a URL"
                )
            url = self.url.get_secret_value()
        options: dict[str, Any] = {}
        if self.cache_url is not None:
            options["cache"] = self.cache_url.get_secret_value()
        if self.timeout is not None:
            options["timeout"] = self.timeout
        if self.cursor_secret is not None:
            options["cursor_secret"] = self.cursor_secret.get_secret_value()
        if self.keyring is not None:  # the security layer's connect(keyring=...) parses it
            options["keyring"] = self.keyring.get_secret_value()
        sizes = {"pool_min_size": self.pool_min_size, "pool_max_size": self.pool_max_size}
        if any(v is not None for v in sizes.values()):
            scheme = urlsplit(url).scheme.lower()
            names = _POOL_OPTIONS.get(scheme)
            if names is None:
                raise ConfigurationError(
                    f"ASYNCDB_POOL_MIN_SIZE/ASYNCDB_POOL_MAX_SIZE: the {scheme or 'given'} "
                    "backend keeps no connection pool asyncdb can size"
                )
            for name, value in zip(names, sizes.values(), strict=True):
                if value is not None:
                    options[name] = value
        return url, options
