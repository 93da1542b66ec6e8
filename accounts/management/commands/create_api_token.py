import re

from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiToken

CLIENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class Command(BaseCommand):
    help = ("Create an API token for a client (bravo, plugin, ...). The token is printed "
            "once, alone on the last line; only its digest is stored.")

    def add_arguments(self, parser):
        parser.add_argument("client", help="Client name, e.g. bravo")

    def handle(self, *args, client, **options):
        name = client.strip().lower()
        if not CLIENT_NAME.match(name):
            raise CommandError("A client name is 1-64 lowercase letters, digits, '-' or '_', "
                               f"starting with a letter or digit; got {client!r}.")
        token, text = ApiToken.issue(name)
        others = ApiToken.objects.filter(client=name, revoked_at__isnull=True).exclude(pk=token.pk)
        self.stdout.write(f"Created an API token for client {name!r}.")
        self.stdout.write("Send it in the X-API-Token header. It is shown only now: the server "
                          "keeps a digest, not the token.")
        if others.exists():
            self.stdout.write(f"The client's {others.count()} earlier token(s) stay valid until "
                              "revoked (Django admin → API tokens).")
        self.stdout.write(text)
