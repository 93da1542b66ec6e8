from django.conf import settings
from django.core.management.base import BaseCommand

from jobs.node import retention


class Command(BaseCommand):
    help = ("Delete finished jobs older than JOB_RETENTION_DAYS with their logs, events "
            "and review previews, batches none of whose jobs is left, and temp folders of "
            "renders that are over. Rendered outputs are left alone.")

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None,
                            help="Keep this many days instead "
                            f"(default JOB_RETENTION_DAYS={settings.JOB_RETENTION_DAYS})")
        parser.add_argument("--dry-run", action="store_true",
                            help="Only count what would be deleted")

    def handle(self, *args, days=None, dry_run=False, **options):
        if days is not None and days < 0:
            self.stderr.write("--days must be 0 or more")
            raise SystemExit(2)
        if dry_run:
            found = retention.purge_jobs(days, dry_run=True)
            self.stdout.write(f"Would delete {found.jobs} job(s) with {found.logs} log(s) and "
                              f"{found.events} event(s); "
                              f"{len(retention.stale_temp_dirs())} temp folder(s).")
            return
        result = retention.purge(days)
        self.stdout.write(f"Deleted {result.jobs} job(s) with {result.logs} log(s) and "
                          f"{result.events} event(s), {result.previews} preview(s) and "
                          f"{result.batches} batch(es); removed {len(result.temp_dirs)} "
                          "temp folder(s).")
