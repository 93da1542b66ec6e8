import logging
import signal

from django.core.management.base import BaseCommand

from jobs.node.worker import Worker, default_node_name

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run a render node: validate submitted files and render queued jobs one at a time."

    def add_arguments(self, parser):
        parser.add_argument("--node", default=None,
                            help=f"Name of this render node (default: {default_node_name()})")
        parser.add_argument("--no-validate", action="store_true",
                            help="Do not run file validation on this node")

    def handle(self, *args, node=None, no_validate=False, **options):
        while True:
            worker = Worker(node, validate=not no_validate)
            # Signals only set a flag: the loop stops claiming, kills the active
            # render and puts its job back in the queue.
            for name in ("SIGTERM", "SIGINT", "SIGBREAK"):
                if hasattr(signal, name):
                    signal.signal(getattr(signal, name), worker.request_stop)
            worker.run()
            if not worker.restart_requested or worker.signalled:
                break
            log.info("restarting the render engine as requested")
