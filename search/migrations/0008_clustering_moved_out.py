"""The clustering models moved to the ``clustering`` app (tables unchanged).

State only: see ``search/clustering/migrations/0001_initial.py``. The
analytics functions that ``0005`` and ``0008_analytics_functions`` used to
install are installed after every ``migrate`` now (``search.analytics.install``).
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("search", "0007_clustering_run_updated_at"),
        ("clustering", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name="clustermembership", name="cluster"),
                migrations.RemoveField(model_name="clusteringrun", name="created_by"),
                migrations.RemoveField(model_name="clustermembership", name="run"),
                migrations.RemoveField(model_name="clustermembership", name="document"),
                migrations.DeleteModel(name="Cluster"),
                migrations.DeleteModel(name="ClusteringRun"),
                migrations.DeleteModel(name="ClusterMembership"),
            ],
            database_operations=[],
        )
    ]
