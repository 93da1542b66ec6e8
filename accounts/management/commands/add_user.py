from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from accounts.models import MacUsername, User


class Command(BaseCommand):
    help = "Create a user, or update one: role, macOS usernames, password."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--admin", action="store_true", help="Make the user an admin.")
        parser.add_argument("--mac-username", dest="mac_usernames", action="extend", nargs="+",
                            default=[], metavar="NAME",
                            help="macOS account name(s) whose submissions belong to the user.")
        parser.add_argument("--password", help="Allow password sign-in (ALLOW_PASSWORD_LOGIN).")

    @transaction.atomic
    def handle(self, *args, email, admin, mac_usernames, password, **options):
        email = email.strip().lower()
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"{email!r} is not an email address.") from None

        names = []
        for raw in mac_usernames:
            name = raw.strip()
            if not name or len(name) > 64 or any(c in name for c in "/\\:") or \
                    not name.isprintable():
                raise CommandError(f"{raw!r} is not a macOS username.")
            names.append(name)

        user = User.objects.filter(email__iexact=email).first()
        created = user is None
        if created:
            user = User(username=email, email=email)
            user.set_unusable_password()
        for name in names:
            held = (MacUsername.objects.filter(name__iexact=name)
                    .exclude(status=MacUsername.Status.REFUSED).select_related("user").first())
            if held is not None and held.user_id != user.pk:
                how = "belongs to" if held.status == MacUsername.Status.APPROVED \
                    else "is claimed (waiting for an admin) by"
                raise CommandError(f"The macOS username {name!r} {how} {held.user.email}; "
                                   "remove it there first.")
        if admin:
            # Admins also get the Django admin, kept for raw data fixes.
            user.role = User.Role.ADMIN
            user.is_staff = user.is_superuser = True
        if password:
            user.set_password(password)
        user.save()
        for name in names:
            # Given by an admin at the command line: approved, whatever was before.
            mine = user.mac_usernames.filter(name__iexact=name).first()
            if mine is None:
                MacUsername.objects.create(user=user, name=name)
            elif mine.status != MacUsername.Status.APPROVED:
                MacUsername.objects.filter(pk=mine.pk).update(
                    status=MacUsername.Status.APPROVED, decided_at=timezone.now())

        owned = ", ".join(user.mac_usernames.filter(status=MacUsername.Status.APPROVED)
                          .values_list("name", flat=True)) or "none"
        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} {user.email} (role {user.role}; macOS usernames: {owned}).")
