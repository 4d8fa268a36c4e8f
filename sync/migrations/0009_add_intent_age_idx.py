from django.db import migrations, models


class Migration(migrations.Migration):
    """The fence's staleness bound reads each model's oldest intents (sync/cache/fence.py)."""

    dependencies = [
        ("sync", "0008_add_sync_uploads"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="syncintent",
            index=models.Index(fields=["model", "created_at"], name="sync_intent_age_idx"),
        ),
    ]
