"""The job list by status for one person or one API client: the status tabs' capped
counts read only the index (PostgreSQL: index-only scans), and GET /api/jobs?status=
counts its jobs the same way (bench/job_list.py)."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0014_dashboard'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name='job',
            index=models.Index(fields=['user', 'status', '-created_at'], name='job_user_status_created'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(fields=['client', 'status', '-created_at'], name='job_client_status_created'),
        ),
    ]
