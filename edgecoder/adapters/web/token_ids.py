"""Embedding inputs sent as token ids, read back into text (OpenAI's ``cl100k_base`` ids).

OpenAI's embeddings API takes ``input`` as token ids too, and some clients send nothing
else: LangChain's ``OpenAIEmbeddings`` tokenizes every text with tiktoken's
``cl100k_base`` (the tokenizer of OpenAI's embedding models) and posts the ids. The ids
belong to that tokenizer, not to the model here, so they are decoded with it back into
the text they came from, which the model then reads with its own. The decoder is the
optional ``bpe-openai`` package (``pip install 'edgecoder[tokens]'``), which carries the
vocabulary itself: tiktoken would download it, and a node may have no internet.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import cache
from typing import Any

from edgecoder.errors import BadRequestError

__all__ = ("ENCODING", "decode_token_ids")

ENCODING = "cl100k_base"
_LARGEST_ID = 100_276  # cl100k_base's last token (special tokens included)


@cache
def _encoding() -> Any:
    try:
        with warnings.catch_warnings():
            # It reads its vocabulary with an importlib API that warns of its age.
            warnings.simplefilter("ignore", DeprecationWarning)
            import bpe_openai

            return bpe_openai.get_encoding(ENCODING)
    except ImportError:
        raise BadRequestError(
            "'input' holds token ids; reading them needs the optional bpe-openai package "
            "(pip install 'edgecoder[tokens]'), or send the texts as strings",
            "input",
        ) from None


def decode_token_ids(inputs: Sequence[Sequence[int]]) -> tuple[str, ...]:
    """Each list of ``cl100k_base`` token ids as the text it encodes.

    Blocking the first time (the vocabulary loads in about 0.4 s): call it in a thread.

    :raises BadRequestError: an id out of range, or the decoder is not installed.
    """
    for i, ids in enumerate(inputs):
        if any(not 0 <= t <= _LARGEST_ID for t in ids):
            raise BadRequestError(f"'input[{i}]' has a token id outside {ENCODING}", "input")
    encoding = _encoding()
    return tuple(str(encoding.decode(list(ids))) for ids in inputs)
