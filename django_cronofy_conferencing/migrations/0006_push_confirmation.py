from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("cronofy_conferencing", "0005_push_notifications"),
    ]

    operations = [
        migrations.AddField(
            model_name="linkedaccount",
            name="channel_confirmed_at",
            field=models.DateTimeField(
                blank=True,
                help_text=(
                    "When Cronofy last confirmed the push channel: created, listed, or a "
                    "signed notification for it received"
                ),
                null=True,
            ),
        ),
    ]
