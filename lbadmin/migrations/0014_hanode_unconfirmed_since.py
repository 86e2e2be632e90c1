# Written by hand (issue 17): when the slave last had a push outstanding, so the HA page says
# "not confirmed since ..." from the moment a push is queued. A new nullable column; no data.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('lbadmin', '0013_peer_nonce'),
    ]

    operations = [
        migrations.AddField(
            model_name='hanode',
            name='unconfirmed_since',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
