from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from jobs.node.simulator import install


class Command(BaseCommand):
    help = ("Install the aerender SIMULATOR (a stand-in for Adobe's aerender on machines "
            "without After Effects) and print the path to use as AERENDER_PATH.")

    def add_arguments(self, parser):
        parser.add_argument("directory", nargs="?",
                            help="Target folder (default: DATA_DIR/aerender-simulator)")

    def handle(self, *args, directory=None, **options):
        target = Path(directory) if directory else Path(settings.DATA_DIR) / "aerender-simulator"
        binary = install(target.resolve())
        self.stdout.write(f"Installed the aerender simulator in {target}")
        self.stdout.write(str(binary))
