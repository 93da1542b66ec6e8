"""The dashboard's columns and media: Job.composition (filled from each job's
config), Job.superseded_by, the post-completion follow-ups (JobFollowUp) with
the preview video they make (JobProxy), and the live frame of image-sequence
renders (JobFrame). On PostgreSQL the list's search by composition and macOS
username gets trigram indexes, like the path and name (0003)."""

import logging

import django.db.models.deletion
import django.utils.timezone
from django.db import DatabaseError, migrations, models, transaction

log = logging.getLogger(__name__)

BATCH = 2000
SEARCH_INDEXES = {
    "job_composition_trgm": 'UPPER("composition"::text)',
    "job_mac_username_trgm": 'UPPER("mac_username"::text)',
}


def add_search_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError as exc:
        log.warning("pg_trgm is not available (%s); job search will not use an index", exc)
        return
    for name, expression in SEARCH_INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON jobs_job "
                              f"USING gin ({expression} gin_trgm_ops)")


def drop_search_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in SEARCH_INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


def fill_compositions(apps, schema_editor):
    Job = apps.get_model("jobs", "Job")
    rows = Job.objects.filter(composition="").exclude(engine="ffmpeg").order_by("pk")
    last = None
    while True:
        page = rows.filter(pk__gt=last) if last is not None else rows
        found = list(page.values_list("pk", "config")[:BATCH])
        if not found:
            return
        for pk, config in found:
            template = config.get("template") if isinstance(config, dict) else None
            name = template.get("composition") if isinstance(template, dict) else None
            if isinstance(name, str) and name:
                Job.objects.filter(pk=pk).update(composition=name[:255])
        last = found[-1][0]


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0008_node_liveness'),
    ]

    operations = [
        migrations.CreateModel(
            name='JobFrame',
            fields=[
                ('job', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='frame', serialize=False, to='jobs.job')),
                ('jpeg', models.BinaryField()),
                ('width', models.IntegerField()),
                ('height', models.IntegerField()),
                ('number', models.IntegerField(help_text='Which frame of the sequence (from its file name)')),
                ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.CreateModel(
            name='JobProxy',
            fields=[
                ('job', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='proxy', serialize=False, to='jobs.job')),
                ('mp4', models.BinaryField()),
                ('size', models.IntegerField()),
                ('width', models.IntegerField()),
                ('height', models.IntegerField()),
                ('duration', models.FloatField(blank=True, help_text='Seconds of video it holds', null=True)),
                ('partial', models.BooleanField(default=False)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.AddField(
            model_name='job',
            name='composition',
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AddField(
            model_name='job',
            name='superseded_by',
            field=models.UUIDField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name='JobFollowUp',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(max_length=32)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], default='pending', max_length=8)),
                ('attempts', models.IntegerField(default=0)),
                ('lease', models.UUIDField(blank=True, null=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('claimed_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('run_after', models.DateTimeField(default=django.utils.timezone.now)),
                ('message', models.TextField(blank=True, help_text='What it made, or why it failed')),
                ('job', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='follow_ups', to='jobs.job')),
                ('node', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='jobs.rendernode')),
            ],
            options={
                'indexes': [models.Index(fields=['status', 'run_after'], name='follow_up_due')],
                'constraints': [models.UniqueConstraint(fields=('job', 'kind'), name='one_follow_up_per_kind')],
            },
        ),
        migrations.RunPython(fill_compositions, migrations.RunPython.noop),
        migrations.RunPython(add_search_indexes, drop_search_indexes, elidable=False),
    ]
