# Written by hand (issue 17, item 3): a node that held the floating addresses when its pair
# was broken keeps them. A new column with a default; existing nodes hold none (False).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('lbadmin', '0014_hanode_unconfirmed_since'),
    ]

    operations = [
        migrations.AddField(
            model_name='hanode',
            name='holds_addresses_standalone',
            field=models.BooleanField(default=False),
        ),
    ]
