# Written by hand (issue 16, finding 8): the nonces of signed peer calls, so a captured call
# cannot be replayed. A new table only; nothing existing changes, no data to move.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('lbadmin', '0012_lync_deployment'),
    ]

    operations = [
        migrations.CreateModel(
            name='PeerNonce',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('nonce', models.CharField(max_length=32, unique=True)),
                ('signed_at', models.DateTimeField(db_index=True)),
            ],
            options={
                'verbose_name': 'HA peer nonce',
            },
        ),
    ]
