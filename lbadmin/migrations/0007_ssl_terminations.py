# SSL terminations; and per-daemon pending changes (the blue box names the daemons to reload).

import django.db.models.deletion
import lbadmin.render.snapshot
from django.db import migrations, models


def _haproxy_pending(apps, schema_editor):
    ConfigState = apps.get_model("lbadmin", "ConfigState")
    ConfigState.objects.exclude(generation=models.F("applied_generation")).update(
        pending_engines=["haproxy"]
    )


class Migration(migrations.Migration):

    dependencies = [
        ('lbadmin', '0006_ssl_certificates'),
    ]

    operations = [
        migrations.AddField(
            model_name="configstate",
            name="pending_engines",
            field=models.JSONField(blank=True, default=list),
        ),
        # Until now only HAProxy had a configuration: pending meant "HAProxy must reload".
        migrations.RunPython(_haproxy_pending, migrations.RunPython.noop),
        migrations.AddField(
            model_name="configrevision",
            name="stunnel_text",
            field=models.TextField(blank=True),
        ),
        migrations.CreateModel(
            name='SslTermination',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('label', models.CharField(max_length=64, unique=True)),
                ('port', models.PositiveIntegerField(verbose_name='Virtual Service Port')),
                ('mode', models.CharField(choices=[(lbadmin.render.snapshot.SslMode['HIGH_SECURITY'], 'High Security'), (lbadmin.render.snapshot.SslMode['COMPATIBILITY'], 'Compatibility'), (lbadmin.render.snapshot.SslMode['CUSTOM'], 'Custom')], default=lbadmin.render.snapshot.SslMode['HIGH_SECURITY'], max_length=16, verbose_name='SSL Operation Mode')),
                ('ciphers', models.CharField(blank=True, max_length=1024, verbose_name='Custom cipher list')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('certificate', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='terminations', to='lbadmin.sslcertificate', verbose_name='SSL Certificate')),
                ('virtual_service', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='ssl_terminations', to='lbadmin.virtualservice', verbose_name='Associated Virtual Service')),
            ],
            options={
                'ordering': ['label'],
            },
        ),
    ]
