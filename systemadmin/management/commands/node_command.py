"""python manage.py node_command <node ...|--all> drain|stop|resume [--wait]

PM2 on Windows ends a worker outright (pm2 restart, the memory limit, an
update's restart), which counts as a crashed render. Tell the node first:

    python manage.py node_command render-01 stop --wait && pm2 restart ae-render-manager-worker

``drain`` lets the render in progress finish, ``stop`` puts it back in the
queue without using an attempt; then the node claims nothing ("parked") and
can be killed at no cost. A restarted worker, or ``resume``, claims again.
"""

from __future__ import annotations

import getpass

from django.core.management.base import BaseCommand, CommandError

from systemadmin import services


class Command(BaseCommand):
    help = ("Drain, stop or resume render nodes through the database, so that they can be "
            "restarted or killed without losing a render or an attempt.")

    def add_arguments(self, parser):
        parser.add_argument("words", nargs="+", metavar="NODE ... ACTION",
                            help="node names, then drain, stop or resume")
        parser.add_argument("--all", action="store_true", help="every live render node")
        parser.add_argument("--wait", action="store_true",
                            help="wait until the nodes render nothing and claim nothing")
        parser.add_argument("--timeout", type=float, default=None,
                            help="with --wait: give up after this many seconds (exit code 1); "
                            "default: no limit for drain, 120 s for stop")

    def handle(self, *args, words, all=False, wait=False, timeout=None, **options):
        *names, action = words
        if action not in services.NODE_ACTIONS:
            raise CommandError(f"the action must be one of {', '.join(services.NODE_ACTIONS)}, "
                               f"not {action!r}")
        if bool(names) == all:
            raise CommandError("name the nodes or give --all (not both)")
        if timeout is not None and timeout <= 0:
            raise CommandError("--timeout must be more than 0")
        actor = f"manage.py node_command ({_user()})"
        try:
            result = services.command_nodes(actor, action, names or None)
        except services.UnknownNode as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(result.message)
        if not wait or action == "resume" or not result.nodes:
            return
        if timeout is None:
            timeout = 120.0 if action == "stop" else float("inf")

        def show(states):
            self.stdout.write("  " + ", ".join(f"{name}: {state}"
                                               for name, state in sorted(states.items())))

        states = services.wait_settled(result.nodes, timeout, on_change=show)
        pending = sorted(name for name, state in states.items()
                         if state not in services.SETTLED)
        if pending:
            self.stderr.write(f"timed out after {timeout:g} s waiting for {', '.join(pending)}")
            raise SystemExit(1)
        self.stdout.write("Safe to restart or stop: nothing renders on "
                          f"{', '.join(result.nodes)}.")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return "unknown user"
