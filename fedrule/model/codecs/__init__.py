"""Baseline item-table formats as ``ItemCodec``s, compared with the elastic table at equal bytes:
the hashing trick (``hashing``), quotient-remainder embeddings (``qr``) and training popularity
(``popularity``, no model). The naive truncation of a full table is the elastic codec with a
uniform configuration (``fedrule.search.customize.uniform_fit``), not a codec of its own.
"""

from fedrule.model.codecs.dense import DenseTable
from fedrule.model.codecs.hashing import HashingCodec
from fedrule.model.codecs.popularity import PopularityCodec
from fedrule.model.codecs.qr import QRCodec

__all__ = ["DenseTable", "HashingCodec", "PopularityCodec", "QRCodec"]
