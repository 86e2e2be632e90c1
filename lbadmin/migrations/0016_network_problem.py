# Reviewed (issue 18): a node's network problem (a missing interface, a revert that could not be
# completed) as a text column with a default, so existing rows need nothing; and addresses
# listed in the order added (their ids) rather than as strings, so an interface's first IPv4
# address stays its primary after a reboot. Ordering is Python-side only: no SQL. A route's
# metric: nullable, existing routes keep the kernel's default (None).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('lbadmin', '0015_hanode_holds_addresses_standalone'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='networkaddress',
            options={'ordering': ['interface__name', 'id']},
        ),
        migrations.AddField(
            model_name='staticroute',
            name='metric',
            field=models.PositiveBigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='hostsettings',
            name='network_problem',
            field=models.TextField(blank=True, default=''),
        ),
    ]
