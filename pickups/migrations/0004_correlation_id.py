import uuid

from django.db import migrations, models


def give_each_its_own(apps, schema_editor):
    """A default is computed once for the rows already there: give each pickup its own id."""
    PickupRequest = apps.get_model("pickups", "PickupRequest")
    pickups = list(PickupRequest.objects.only("pk"))
    for pickup in pickups:
        pickup.correlation_id = uuid.uuid4()
    PickupRequest.objects.bulk_update(pickups, ["correlation_id"], batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [
        ("pickups", "0003_lifecycle"),
    ]

    operations = [
        migrations.AddField(
            model_name="pickuprequest",
            name="correlation_id",
            field=models.UUIDField(null=True, editable=False),
        ),
        migrations.RunPython(give_each_its_own, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="pickuprequest",
            name="correlation_id",
            field=models.UUIDField(db_index=True, default=uuid.uuid4, editable=False),
        ),
    ]
