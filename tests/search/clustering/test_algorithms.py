"""The clustering math: k-means, HDBSCAN, projection, class TF-IDF labels and drift."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from search.clustering import algorithms as clustering
from search.clustering.algorithms import DriftKind, centre_by_language

pytestmark = pytest.mark.django_db


def blobs(
    centres: int, per: int = 40, dims: int = 64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs around random unit directions."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(centres, dims))
    points = np.vstack([d + rng.normal(scale=0.15, size=(per, dims)) for d in directions])
    return points, np.repeat(np.arange(centres), per)


class TestKMeans:
    def test_recovers_well_separated_blobs(self) -> None:
        """k-means with the true k finds the blobs exactly."""
        points, truth = blobs(4)
        result = clustering.kmeans(points, 4)
        assert adjusted_rand_score(truth, result.labels) == 1.0
        assert result.sizes() == [40, 40, 40, 40]
        assert result.silhouette is not None and result.silhouette > 0.5

    def test_auto_k_picks_the_true_k(self) -> None:
        """The automatic choice keeps the k with the best silhouette: the true one."""
        points, truth = blobs(5, per=30)
        result = clustering.auto_kmeans(points, k_min=2, k_max=9)
        assert result.k == 5
        assert sorted(result.silhouettes) == list(range(2, 10))
        assert max(result.silhouettes, key=result.silhouettes.__getitem__) == 5
        assert adjusted_rand_score(truth, result.labels) == 1.0

    def test_clusters_are_numbered_largest_first(self) -> None:
        """Cluster 0 is the largest; centroids are unit vectors."""
        rng = np.random.default_rng(1)
        a, b = rng.normal(size=(2, 32))
        points = np.vstack(
            [a + rng.normal(scale=0.1, size=(10, 32)), b + rng.normal(scale=0.1, size=(30, 32))]
        )
        result = clustering.kmeans(points, 2)
        assert result.sizes() == [30, 10]
        assert np.allclose(np.linalg.norm(result.centroids, axis=1), 1.0, atol=1e-5)

    def test_cohesion_and_representatives(self) -> None:
        """Cohesion is the mean cosine to the centroid; representatives are nearest it."""
        points, _ = blobs(3)
        result = clustering.kmeans(points, 3)
        assert all(0.9 < c <= 1.0 for c in result.cohesion())
        for number, members in enumerate(result.representatives(n=3)):
            assert len(members) == 3
            own = result.distances[result.labels == number]
            assert result.distances[members[0]] == pytest.approx(own.min())

    def test_more_clusters_than_points_is_refused(self) -> None:
        """Asking for more clusters than points says so."""
        with pytest.raises(ValueError, match="3 documents cannot form 5 clusters"):
            clustering.kmeans(np.eye(3, 8), 5)


class TestHDBSCAN:
    def test_finds_blobs_and_outliers(self) -> None:
        """Dense blobs become clusters; isolated points are noise."""
        points, truth = blobs(3, per=30, dims=16)
        rng = np.random.default_rng(5)
        strays = rng.normal(size=(4, 16)) * 3
        result = clustering.hdbscan(np.vstack([points, strays]), min_cluster_size=10)
        assert result.k == 3
        assert adjusted_rand_score(truth, result.labels[:90]) == 1.0
        assert np.all(np.isnan(result.distances[result.labels == clustering.NOISE]))


class TestProjection:
    def test_two_coordinates_per_point_and_centroid(self) -> None:
        """PCA gives every document and centroid an (x, y)."""
        points, _ = blobs(3)
        result = clustering.kmeans(points, 3)
        xy, centres = clustering.project_2d(points, result.centroids)
        assert xy.shape == (120, 2)
        assert centres is not None and centres.shape == (3, 2)


class TestClassTfidf:
    def test_picks_distinctive_words(self) -> None:
        """Words common to every cluster lose to each cluster's own words."""
        texts = [
            "report tomato garden report",
            "report tomato soil",
            "report garden tomato",
            "report invoice budget",
            "report budget ledger report",
            "report invoice",
        ]
        terms = clustering.class_tfidf_terms(texts, [0, 0, 0, 1, 1, 1], analyzer=str.split, top_n=2)
        assert [t for t, _ in terms[0]] == ["tomato", "garden"]
        assert [t for t, _ in terms[1]] == ["budget", "invoice"]

    def test_drops_numbers_and_short_terms(self) -> None:
        """Labels never show bare numbers or one-letter terms."""
        texts = ["2024 2024 x x 3.5 telescope", "2024 x nebula"]
        terms = clustering.class_tfidf_terms(texts, [0, 1], analyzer=str.split)
        assert terms == {
            0: [("telescope", pytest.approx(terms[0][0][1]))],
            1: [("nebula", pytest.approx(terms[1][0][1]))],
        }

    def test_noise_is_not_labelled(self) -> None:
        """Outliers take no part in the labels."""
        terms = clustering.class_tfidf_terms(
            ["alpha beta", "gamma delta"], [0, -1], analyzer=str.split
        )
        assert list(terms) == [0]
        assert {t for t, _ in terms[0]} == {"alpha", "beta"}

    def test_batch_analyzer(self) -> None:
        """A batch analyzer gives the same terms as the one-text analyzer."""
        texts, labels = ["apple pear", "plum fig"], [0, 1]
        one = clustering.class_tfidf_terms(texts, labels, analyzer=str.split)
        many = clustering.class_tfidf_terms(
            texts, labels, batch_analyzer=lambda ts: [t.split() for t in ts]
        )
        assert one == many

    def test_stems_read_as_words(self) -> None:
        """Labels show the commonest word behind a stem; Korean morphemes stay."""
        from documents.analysis import analyze

        texts = ["Payroll and payrolls; the galaxies, a galaxy, galaxies.", "임베딩은 좋다"]
        words = clustering.surface_forms(
            ["payrol", "galaxi", "임베딩", "absent"], texts, analyzer=analyze
        )
        assert words == {
            "payrol": "payroll",
            "galaxi": "galaxies",
            "임베딩": "임베딩",
            "absent": "absent",
        }

    def test_label_format(self) -> None:
        """A label joins the three best terms with a middle dot."""
        label = clustering.label_from_terms([("a1", 3.0), ("b2", 2.0), ("c3", 1.0), ("d4", 0.5)])
        assert label == "a1 · b2 · c3"


class TestDrift:
    def test_classifies_clusters(self) -> None:
        """Clusters are matched by member overlap and called new/grew/shrank/stable/vanished."""
        previous = {i: 0 for i in range(1, 11)}
        previous |= {i: 1 for i in range(11, 16)}
        previous |= {i: 2 for i in range(16, 21)}
        previous |= {i: 3 for i in range(40, 50)}
        current: dict[int, int | None] = {i: 5 for i in range(1, 11)}
        current |= {i: 5 for i in range(21, 27)}  # grew
        current |= {i: 6 for i in range(11, 16)}  # stable (renumbered)
        current |= {i: 7 for i in range(30, 36)}  # new
        current |= {i: 8 for i in range(40, 45)}  # shrank
        current |= {99: None}  # an outlier counts nowhere
        drift = {
            (d.kind, d.current, d.previous)
            for d in clustering.compare_memberships(previous, current)
        }
        assert drift == {
            (DriftKind.GREW, 5, 0),
            (DriftKind.STABLE, 6, 1),
            (DriftKind.NEW, 7, None),
            (DriftKind.SHRANK, 8, 3),
            (DriftKind.VANISHED, None, 2),
        }

    def test_identical_runs_are_stable(self) -> None:
        """The same memberships under other numbers are all stable, Jaccard 1."""
        previous = {i: i % 3 for i in range(30)}
        current = {i: (i + 1) % 3 for i in range(30)}
        drift = clustering.compare_memberships(previous, current)
        assert [d.kind for d in drift] == [DriftKind.STABLE] * 3
        assert all(d.jaccard == 1.0 for d in drift)


class TestCentreByLanguage:
    def test_each_language_loses_its_own_mean(self) -> None:
        rng = np.random.default_rng(0)
        english = np.array([True] * 4 + [False] * 5)
        vectors = rng.normal(size=(9, 6)).astype(np.float32) + np.where(english, 3.0, -3.0)[:, None]
        centred = centre_by_language(vectors, english)
        np.testing.assert_allclose(centred[english].mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(centred[~english].mean(axis=0), 0, atol=1e-5)
        # Within a language the differences are kept.
        np.testing.assert_allclose(centred[1] - centred[0], vectors[1] - vectors[0], atol=1e-5)

    def test_a_language_of_few_documents_is_left_alone(self) -> None:
        vectors = np.eye(5, dtype=np.float32)
        english = np.array([True, True, False, False, False])
        np.testing.assert_array_equal(centre_by_language(vectors, english), vectors)
