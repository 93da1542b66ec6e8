#!/usr/bin/env python3
"""A throwaway PostgreSQL server for the test suite (standard library only).

    python tools/pgtest.py start DIR     # init (once) and start; prints DATABASE_URL last
    python tools/pgtest.py stop DIR      # stop it (no-op when not running)
    python tools/pgtest.py url DIR       # print the URL of the running server
    python tools/pgtest.py restart DIR   # `pg_ctl restart -m fast`: every connection drops
    python tools/pgtest.py destroy DIR   # stop it and delete the cluster
    python tools/pgtest.py run [--optional] DIR -- CMD ARGS...
        # start, run CMD with DATABASE_URL set, stop again (even when CMD fails,
        # and unless the server was already running before); exits with CMD's code.
        # --optional: without server binaries, say how to get them and exit 0
        # instead of failing -- except under CI=true, where nothing may be skipped.
        # CMD also gets PGTEST_DIR (DIR, absolute): fault tests restart the server
        # under running render nodes with `pgtest.py restart $PGTEST_DIR`.

The cluster listens on 127.0.0.1 only, on a free port, with its socket directory
inside DIR, trust authentication and durability switched off (fsync,
synchronous_commit, full_page_writes): it is for tests, never for data.
Tests connect as the ``postgres`` superuser, which may create the
``test_<name>`` databases that pytest-django makes.

PostgreSQL refuses to run as root. As root the cluster is created and run as
the ``postgres`` system user (runuser), in DIR when that user can reach it,
otherwise in a folder under the system temp directory that DIR records.

Server binaries are looked up in $PG_BIN, /usr/lib/postgresql/<newest>/bin,
Homebrew's folders and PATH. Exit codes: 0 ok, 1 error, 3 binaries missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DB_NAME = "rendermanager"
SUPERUSER = "postgres"
MISSING = 3
HOW_TO_GET = (
    "install the PostgreSQL server: `apt-get install -y postgresql` on Debian/Ubuntu, "
    "`brew install postgresql@15` on macOS, or point PG_BIN at a folder with initdb and pg_ctl"
)
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class Failure(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def log(message: str) -> None:
    print(f"pgtest: {message}", file=sys.stderr, flush=True)


# --- Finding the server binaries -------------------------------------------------------


def _version_key(path: Path):
    name = path.parent.name if path.name == "bin" else path.name
    digits = "".join(c if c.isdigit() else " " for c in name).split()
    return [int(d) for d in digits] or [0]


def find_bin() -> Path:
    candidates: list[Path] = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key,
                         reverse=True)
    for brew in ("/opt/homebrew/opt", "/usr/local/opt"):
        candidates += sorted(Path(brew).glob("postgresql*/bin"), key=_version_key,
                             reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise Failure(f"PostgreSQL server binaries (initdb, pg_ctl) not found: {HOW_TO_GET}",
                  MISSING)


# --- Running as root or not -------------------------------------------------------------


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def as_server_user(argv: list[str]) -> list[str]:
    if not is_root():
        return argv
    if shutil.which("runuser") is None:
        raise Failure("running as root needs `runuser` (util-linux) to start PostgreSQL "
                      f"as the {SUPERUSER!r} user")
    return ["runuser", "-u", SUPERUSER, "--", *argv]


def server_user_ids() -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise Failure(f"running as root needs a {SUPERUSER!r} system user to own the "
                      f"cluster (the Debian package creates it): {HOW_TO_GET}") from None
    return entry.pw_uid, entry.pw_gid


def server_user_can_use(folder: Path) -> bool:
    probe = as_server_user(["sh", "-c", 'test -w "$1" && test -x "$1"', "sh", str(folder)])
    return subprocess.run(probe, capture_output=True).returncode == 0


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise Failure(f"`{' '.join(argv)}` failed ({result.returncode}):\n{output}")
    return result


# --- State -----------------------------------------------------------------------------


class Cluster:
    """A cluster described by DIR/state.json (DIR is always the caller's own folder)."""

    def __init__(self, folder: Path):
        self.folder = folder.resolve()
        self.state_file = self.folder / "state.json"
        self.state: dict = {}
        if self.state_file.is_file():
            try:
                self.state = json.loads(self.state_file.read_text())
            except ValueError:
                self.state = {}

    @property
    def home(self) -> Path:
        """Where the data directory, socket and log live."""
        return Path(self.state.get("home", self.folder))

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def sockets(self) -> Path:
        return self.home / "sock"

    @property
    def logfile(self) -> Path:
        return self.home / "server.log"

    @property
    def port(self) -> int | None:
        return self.state.get("port")

    def url(self) -> str:
        return f"postgres://{SUPERUSER}@127.0.0.1:{self.port}/{DB_NAME}"

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(self.state, indent=2) + "\n")

    def choose_home(self) -> None:
        """Keep everything in DIR unless the server user cannot reach it or the
        socket path would be too long (Unix sockets allow about 100 bytes)."""
        if "home" in self.state:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        home = self.folder
        too_long = len(str(home / "sock" / ".s.PGSQL.65535")) > 100
        if too_long or (is_root() and not self._root_can_use(home)):
            digest = hashlib.sha256(str(self.folder).encode()).hexdigest()[:12]
            home = Path(tempfile.gettempdir()) / f"pgtest-{digest}"
            log(f"keeping the cluster in {home} (the server cannot use {self.folder})")
        self.state["home"] = str(home)
        self.save()

    def _root_can_use(self, home: Path) -> bool:
        uid, gid = server_user_ids()
        os.chown(home, uid, gid)
        return server_user_can_use(home)

    def prepare_dirs(self) -> None:
        for folder in (self.home, self.sockets):
            folder.mkdir(parents=True, exist_ok=True)
            if is_root():
                uid, gid = server_user_ids()
                os.chown(folder, uid, gid)
        if is_root():
            self.sockets.chmod(0o700)

    # --- Server control --------------------------------------------------------------

    def running(self, bindir: Path) -> bool:
        if not (self.data / "PG_VERSION").is_file():
            return False
        status = subprocess.run(as_server_user([str(bindir / "pg_ctl"), "-D", str(self.data),
                                                "status"]), capture_output=True)
        return status.returncode == 0

    def initdb(self, bindir: Path) -> None:
        if (self.data / "PG_VERSION").is_file():
            return
        if self.data.exists():
            shutil.rmtree(self.data)
        base = [str(bindir / "initdb"), "-D", str(self.data), "--auth=trust",
                f"--username={SUPERUSER}", "--encoding=UTF8", "--no-sync"]
        last = None
        for locale in ("C.UTF-8", "en_US.UTF-8", "C"):
            result = subprocess.run(as_server_user([*base, f"--locale={locale}"]),
                                    capture_output=True, text=True)
            if result.returncode == 0:
                break
            last = result
            if self.data.exists():
                shutil.rmtree(self.data, ignore_errors=True)
        else:
            output = (last.stdout + last.stderr).strip() if last else ""
            raise Failure(f"initdb failed:\n{output}")
        conf = "".join(f"{key} = {value}\n" for key, value in FAST_SETTINGS.items())
        conf_path = self.data / "postgresql.auto.conf"
        with conf_path.open("a") as handle:
            handle.write("# pgtest: throwaway test cluster, durability off\n" + conf)

    def start(self, bindir: Path) -> None:
        self.prepare_dirs()
        self.initdb(bindir)
        last_error = None
        for _ in range(5):
            port = self.port if self.port and port_free(self.port) else free_port()
            options = (f"-p {port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
                       "-c unix_socket_permissions=0777")
            argv = [str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile),
                    "-w", "-t", "60", "-o", options, "start"]
            result = subprocess.run(as_server_user(argv), capture_output=True, text=True)
            if result.returncode == 0:
                self.state["port"] = port
                self.save()
                return
            last_error = (result.stdout + result.stderr).strip() + "\n" + self.log_tail()
            time.sleep(0.2)  # most likely someone else took the port: try another
        raise Failure(f"PostgreSQL did not start:\n{last_error}")

    def stop(self, bindir: Path) -> bool:
        if not self.running(bindir):
            return False
        run(as_server_user([str(bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                            "-w", "-t", "60", "stop"]))
        return True

    def restart(self, bindir: Path) -> None:
        """A fast restart: clients are disconnected, the server comes back on the same
        port and socket (pg_ctl reuses the options of the previous start)."""
        if not self.running(bindir):
            raise Failure(f"no server running for {self.folder}: run `start` first")
        run(as_server_user([str(bindir / "pg_ctl"), "-D", str(self.data), "-l",
                            str(self.logfile), "-m", "fast", "-w", "-t", "60", "restart"]))

    def create_database(self, bindir: Path) -> None:
        psql = [str(bindir / "psql"), "-h", str(self.sockets), "-p", str(self.port),
                "-U", SUPERUSER, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-tAc"]
        exists = run(psql + [f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'"])
        if exists.stdout.strip() != "1":
            run(psql + [f'CREATE DATABASE "{DB_NAME}"'])

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Commands ------------------------------------------------------------------------


def start(folder: Path) -> tuple[Cluster, bool]:
    """Start the cluster; returns it and whether it was running already."""
    bindir = find_bin()
    cluster = Cluster(folder)
    cluster.choose_home()
    if cluster.running(bindir) and cluster.port:
        was_running = True
    else:
        began = time.monotonic()
        cluster.start(bindir)
        log(f"PostgreSQL ({bindir}) started on 127.0.0.1:{cluster.port} "
            f"in {time.monotonic() - began:.1f}s, data in {cluster.data}")
        was_running = False
    cluster.create_database(bindir)
    return cluster, was_running


def stop(folder: Path) -> None:
    cluster = Cluster(folder)
    if not cluster.state_file.is_file():
        return
    try:
        bindir = find_bin()
    except Failure:
        return
    if cluster.stop(bindir):
        log("PostgreSQL stopped")


def destroy(folder: Path) -> None:
    stop(folder)
    cluster = Cluster(folder)
    for path in {cluster.home, cluster.folder}:
        if path.exists():
            shutil.rmtree(path)
            log(f"removed {path}")


def run_command(folder: Path, argv: list[str], optional: bool = False) -> int:
    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        cluster, was_running = start(folder)
    except Failure as exc:
        in_ci = os.environ.get("CI", "").lower() == "true"
        if exc.code == MISSING and optional and not in_ci:
            log(f"SKIPPED the PostgreSQL pass: {exc}")
            return 0
        raise
    try:
        env = dict(os.environ, DATABASE_URL=cluster.url(), PGTEST_DIR=str(cluster.folder))
        log(f"DATABASE_URL={cluster.url()}")
        return subprocess.call(argv, env=env)
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the stop finish
        if not was_running:
            stop(folder)


def main(argv: list[str]) -> int:
    usage = ("usage: pgtest.py start DIR | stop DIR | url DIR | restart DIR | destroy DIR | "
             "run [--optional] DIR -- COMMAND...")
    optional = "--optional" in argv[1:2]
    if optional:
        argv = [argv[0], *argv[2:]]
    if len(argv) < 2 or argv[0] not in {"start", "stop", "url", "restart", "destroy", "run"}:
        print(usage, file=sys.stderr)
        return 2
    command, folder = argv[0], Path(argv[1])
    try:
        if command == "start":
            cluster, _ = start(folder)
            print(cluster.url())
        elif command == "stop":
            stop(folder)
        elif command == "destroy":
            destroy(folder)
        elif command == "restart":
            began = time.monotonic()
            Cluster(folder).restart(find_bin())
            log(f"PostgreSQL restarted in {time.monotonic() - began:.2f}s")
        elif command == "url":
            cluster = Cluster(folder)
            if not (cluster.port and cluster.running(find_bin())):
                raise Failure(f"no server running for {folder}: run `start` first")
            print(cluster.url())
        else:
            rest = argv[2:]
            if rest[:1] == ["--"]:
                rest = rest[1:]
            if not rest:
                print(usage, file=sys.stderr)
                return 2
            return run_command(folder, rest, optional)
    except Failure as exc:
        log(str(exc))
        return exc.code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
