"""all-MiniLM-L6-v2 in numpy: the bundled weights without torch.

The English companion model (``documents.embeddings.get_companion``)
embeds every English query in the web processes; through
sentence-transformers it would import torch there (about 370 MB more
resident memory per process, and seconds of imports). The model is a
6-layer BERT of width 384, small enough for numpy's matrix products: the
same weights (safetensors), the same tokenizer (``tokenizers``), the same
mean pooling, and vectors equal to sentence-transformers' within float
rounding (``tests/documents/test_embeddings.py`` compares them).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
from scipy.special import erf

if TYPE_CHECKING:
    from collections.abc import Sequence

#: sentence-transformers' ``max_seq_length`` of the model, [CLS] and [SEP] included.
MAX_LENGTH: Final = 256
_LAYERS: Final = 6
_HEADS: Final = 12
_EPS: Final = 1e-12
#: float32 constants: a float64 numpy scalar would turn every product into
#: float64 (NumPy 2's promotion rules), at half the speed.
_SQRT_HALF: Final = np.float32(np.sqrt(0.5))


class MiniLM:
    """Encode texts to mean-pooled, L2-normalised 384-d vectors."""

    dimensions = 384

    def __init__(self, path: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        weights = load_file(str(path / "model.safetensors"))
        # Dense layers' matrices transposed once, contiguous: x @ W.T in BLAS.
        self._w = {
            name: np.ascontiguousarray(value.T)
            if value.ndim == 2 and name.startswith("encoder.")
            else value
            for name, value in weights.items()
        }
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=MAX_LENGTH)
        # Counting measures whole texts (to cut them to fit): no truncation.
        self._counter = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._counter.no_padding()
        self._counter.no_truncation()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces of each text, without [CLS] and [SEP]."""
        encoded = self._counter.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encoded]

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Vectors of ``texts`` in input order, batched by similar length."""
        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.float32)
            for row, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1.0
            out[rows] = self._forward(ids, mask)
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self._w
        batch, width = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:width][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w, "embeddings.LayerNorm")
        # Padding positions get -inf-like scores: no token attends to them.
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        head = self.dimensions // _HEADS
        for n in range(_LAYERS):
            p = f"encoder.layer.{n}."

            def split(t: np.ndarray, *, keys: bool = False) -> np.ndarray:
                # Contiguous, so that the stacked products below run in BLAS
                # (numpy falls back to a slow loop over strided stacks).
                heads = t.reshape(batch, width, _HEADS, head)
                order = (0, 2, 3, 1) if keys else (0, 2, 1, 3)
                return np.ascontiguousarray(heads.transpose(order))

            q = split(_linear(x, w, p + "attention.self.query"))
            k = split(_linear(x, w, p + "attention.self.key"), keys=True)
            v = split(_linear(x, w, p + "attention.self.value"))
            # Softmax in place: the scores are the largest array here.
            probs = q @ k
            probs *= np.float32(1 / np.sqrt(head))
            probs += bias
            probs -= probs.max(axis=-1, keepdims=True)
            np.exp(probs, out=probs)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, width, self.dimensions)
            attended = _linear(context, w, p + "attention.output.dense")
            x = _layer_norm(attended + x, w, p + "attention.output.LayerNorm")
            hidden = _linear(x, w, p + "intermediate.dense")
            hidden = 0.5 * hidden * (1.0 + erf(hidden * _SQRT_HALF))  # BERT's exact GELU
            x = _layer_norm(_linear(hidden, w, p + "output.dense") + x, w, p + "output.LayerNorm")
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1), 1)[:, None]
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def _linear(x: np.ndarray, w: dict[str, np.ndarray], name: str) -> np.ndarray:
    """``x W^T + b`` over the last axis (one 2-D product: numpy runs a stack
    of 2-D products against one matrix far slower)."""
    weight = w[name + ".weight"]  # Stored transposed: (in, out).
    flat = x.reshape(-1, x.shape[-1]) @ weight + w[name + ".bias"]
    return flat.reshape(*x.shape[:-1], weight.shape[1])


def _layer_norm(x: np.ndarray, w: dict[str, np.ndarray], name: str) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + _EPS) * w[name + ".weight"] + w[name + ".bias"]
