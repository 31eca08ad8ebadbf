"""``db.collection(name, model=Model, encrypted={...})``: the typed view of an encrypted
collection. Writes are validated by the model and dumped (asyncdb.models), then sealed
(asyncdb.security); reads are opened, then validated into model instances. Imported only when a
collection is both typed and encrypted (it needs the ``models`` and ``security`` extras)."""

from __future__ import annotations

from typing import Any

from asyncdb.backends.base import KeyTuple, Session
from asyncdb.collection import Collection
from asyncdb.models import ModelCodec, ModelCollection, model_codec
from asyncdb.security.codec import DocumentCodec
from asyncdb.security.collection import EncryptedCollection


class EncryptedModelCollection(ModelCollection[Any], EncryptedCollection):
    """``Collection[Model]`` over an encrypted collection: the model layer's methods run first
    (validate, dump; load on the way out) and call the encryption layer's (seal; open)."""

    def __init__(self, inner: Collection, codec: DocumentCodec, models: ModelCodec) -> None:
        EncryptedCollection.__init__(self, inner, codec)
        self.model_codec = models
        self.model = models.model

    def bind(self, handle: Collection) -> EncryptedModelCollection:
        """The same model and encryption in the session of another handle (a transaction's)."""
        bound = EncryptedCollection.bind(self, handle)
        return EncryptedModelCollection(bound.inner, self.codec, self.model_codec)

    def _bind(
        self, session: Session | None, tx_writes: list[tuple[str, list[KeyTuple] | None]]
    ) -> EncryptedModelCollection:
        return self.bind(Collection(self._db, self.inner._store, session, tx_writes))

    def __repr__(self) -> str:
        return (
            f"<EncryptedCollection[{self.model.__name__}] {self.spec.name!r} on {self._db.backend}>"
        )


def typed_encrypted(encrypted: EncryptedCollection, model: type[Any]) -> EncryptedModelCollection:
    """The typed view of ``encrypted`` (a wrong ``model=`` is refused first)."""
    return EncryptedModelCollection(
        encrypted.inner, encrypted.codec, model_codec(model, encrypted.spec.key)
    )


__all__ = ["EncryptedModelCollection", "typed_encrypted"]
