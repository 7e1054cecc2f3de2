"""Where the installer of the analytics functions records what it installed.

The functions themselves are installed after every ``migrate`` from the
app's ranking SQL (``search.analytics.install``), no longer by migrations.
"""

from django.db import migrations

SQL = [
    """CREATE TABLE analytics_private.installed_functions (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        digest text NOT NULL,
        installed_at timestamptz NOT NULL DEFAULT now()
    )""",
]


class Migration(migrations.Migration):
    dependencies = [("search", "0008_clustering_moved_out")]

    operations = [
        migrations.RunSQL(SQL, ["DROP TABLE analytics_private.installed_functions"]),
    ]
