"""The near-copy cosine of each embedding model, for analytics.related_documents.

Models spread cosines differently, so the threshold that flags a possible
copy is measured per model (documents.embeddings); the SQL function reads
the value of the source document's model from the recorded settings.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("search", "0009_analytics_installed_functions")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE analytics_private.search_settings"
            " ADD COLUMN duplicate_thresholds jsonb NOT NULL DEFAULT '{}'::jsonb",
            "ALTER TABLE analytics_private.search_settings DROP COLUMN duplicate_thresholds",
        )
    ]
