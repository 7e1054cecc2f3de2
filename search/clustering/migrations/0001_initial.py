"""The clustering models, moved from the ``search`` app with their tables.

The tables already exist (``search_clusteringrun``, ``search_cluster`` and
``search_clustermembership``, created by ``search.0002_clustering``): this
migration only tells Django's state that the models now belong here, and
moves their content types (with the permissions attached to them, such as
``run_clustering``) from ``search`` to ``clustering``. On a new database the
tables come from the ``search`` migrations this one depends on.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

MODELS = ["clusteringrun", "cluster", "clustermembership"]


def move_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.using(schema_editor.connection.alias).filter(
        app_label="search", model__in=MODELS
    ).update(app_label="clustering")


def restore_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.using(schema_editor.connection.alias).filter(
        app_label="clustering", model__in=MODELS
    ).update(app_label="search")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("documents", "0004_postings_document_length"),
        ("search", "0007_clustering_run_updated_at"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ClusteringRun",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "scope",
                            models.CharField(
                                choices=[
                                    ("all", "All documents"),
                                    ("tag", "Documents with a tag"),
                                    ("dates", "Documents added in a date range"),
                                ],
                                default="all",
                                max_length=10,
                            ),
                        ),
                        ("tag", models.CharField(blank=True, max_length=64)),
                        (
                            "date_from",
                            models.DateField(blank=True, help_text="Added on or after.", null=True),
                        ),
                        (
                            "date_to",
                            models.DateField(
                                blank=True, help_text="Added on or before.", null=True
                            ),
                        ),
                        (
                            "algorithm",
                            models.CharField(
                                choices=[
                                    ("kmeans", "k-means (fixed k)"),
                                    ("auto", "k-means, k chosen by silhouette"),
                                    ("hdbscan", "HDBSCAN (density; finds outliers)"),
                                ],
                                default="auto",
                                max_length=10,
                            ),
                        ),
                        (
                            "k",
                            models.PositiveSmallIntegerField(
                                blank=True, help_text="Number of clusters (k-means).", null=True
                            ),
                        ),
                        (
                            "k_min",
                            models.PositiveSmallIntegerField(
                                default=2, help_text="Smallest k tried (auto)."
                            ),
                        ),
                        (
                            "k_max",
                            models.PositiveSmallIntegerField(
                                default=12, help_text="Largest k tried (auto)."
                            ),
                        ),
                        (
                            "min_cluster_size",
                            models.PositiveIntegerField(
                                blank=True,
                                help_text="HDBSCAN: smallest cluster (empty: 1% of the documents, at least 5).",
                                null=True,
                            ),
                        ),
                        (
                            "embedding_model",
                            models.CharField(
                                blank=True,
                                help_text="Cluster only documents embedded by this model (empty: the one model in scope).",
                                max_length=200,
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("queued", "Queued"),
                                    ("running", "Running"),
                                    ("done", "Done"),
                                    ("failed", "Failed"),
                                ],
                                db_index=True,
                                default="queued",
                                max_length=10,
                            ),
                        ),
                        ("progress", models.PositiveSmallIntegerField(default=0)),
                        ("message", models.TextField(blank=True)),
                        ("error", models.TextField(blank=True)),
                        ("document_count", models.PositiveIntegerField(default=0)),
                        (
                            "skipped_count",
                            models.PositiveIntegerField(
                                default=0,
                                help_text="Documents in scope without an embedding, left out.",
                            ),
                        ),
                        ("silhouette", models.FloatField(blank=True, null=True)),
                        ("silhouette_by_k", models.JSONField(blank=True, default=dict)),
                        ("projection_computed", models.BooleanField(default=False)),
                        (
                            "created_at",
                            models.DateTimeField(db_index=True, default=django.utils.timezone.now),
                        ),
                        ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "created_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "search_clusteringrun",
                        "ordering": ["-created_at", "-id"],
                        "permissions": [("run_clustering", "Can start clustering runs")],
                    },
                ),
                migrations.CreateModel(
                    name="Cluster",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("number", models.PositiveIntegerField()),
                        ("label", models.CharField(blank=True, max_length=200)),
                        ("terms", models.JSONField(blank=True, default=list)),
                        ("size", models.PositiveIntegerField()),
                        ("cohesion", models.FloatField()),
                        ("representatives", models.JSONField(blank=True, default=list)),
                        ("x", models.FloatField(blank=True, null=True)),
                        ("y", models.FloatField(blank=True, null=True)),
                        (
                            "run",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="clusters",
                                to="clustering.clusteringrun",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "search_cluster",
                        "ordering": ["run", "number"],
                    },
                ),
                migrations.CreateModel(
                    name="ClusterMembership",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("distance_to_centroid", models.FloatField(blank=True, null=True)),
                        ("x", models.FloatField(blank=True, null=True)),
                        ("y", models.FloatField(blank=True, null=True)),
                        (
                            "cluster",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="memberships",
                                to="clustering.cluster",
                            ),
                        ),
                        (
                            "document",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="cluster_memberships",
                                to="documents.document",
                            ),
                        ),
                        (
                            "run",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="memberships",
                                to="clustering.clusteringrun",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "search_clustermembership",
                    },
                ),
                migrations.AddConstraint(
                    model_name="clusteringrun",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("progress__lte", 100)),
                        name="clusteringrun_progress_max_100",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="clusteringrun",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("k_min__lte", models.F("k_max"))),
                        name="clusteringrun_k_range_ordered",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="cluster",
                    constraint=models.UniqueConstraint(
                        fields=("run", "number"), name="cluster_unique_number"
                    ),
                ),
                migrations.AddIndex(
                    model_name="clustermembership",
                    index=models.Index(fields=["run", "cluster"], name="membership_run_cluster"),
                ),
                migrations.AddConstraint(
                    model_name="clustermembership",
                    constraint=models.UniqueConstraint(
                        fields=("run", "document"), name="membership_unique_document"
                    ),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, restore_content_types),
    ]
