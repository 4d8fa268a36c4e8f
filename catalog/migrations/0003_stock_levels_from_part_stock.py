from django.db import migrations

# Every existing part gets its stock level, starting from the part's own stock column (the
# triggers give each row a version and an outbox intent: replay writes them to Redis).
FORWARD = """
INSERT INTO catalog_stock_levels (part_id, quantity, reserved, updated_at, version, updated_at_ns)
SELECT id, stock, 0, now(), 0, 0 FROM catalog_parts
ON CONFLICT (part_id) DO NOTHING
"""


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0002_part_content_stock_levels_versions_changes"),
    ]

    operations = [
        migrations.RunSQL(FORWARD, reverse_sql=migrations.RunSQL.noop),
    ]
