"""A real PostgreSQL for the tests: a throwaway cluster on loopback (I/O).

`PostgresCluster.start()` runs Debian's `initdb` and `pg_ctl` (from
/usr/lib/postgresql/<newest>/bin, installed by scripts/install-system-deps.sh)
in a fresh temporary folder, on a free loopback port, with trust
authentication for loopback only. As root (as in CI) the server runs as the
`postgres` user, because PostgreSQL refuses to run as root. `database(name)`
creates an empty database and returns its SQLAlchemy URL (psycopg 3);
`stop()` stops the server and removes the folder. A server whose test process
was killed before its teardown is stopped and removed by the next start.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
from harness import free_port

PG_ROOT = Path("/usr/lib/postgresql")


def server_binaries() -> Path:
    """The newest installed PostgreSQL's bin folder."""
    versions = sorted(
        (p for p in PG_ROOT.glob("*/bin") if (p / "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        raise RuntimeError(
            f"no PostgreSQL server under {PG_ROOT}/*/bin: run scripts/install-system-deps.sh"
            " (Debian's postgresql package)"
        )
    return versions[-1]


PREFIX = "analysis-hub-pg-"
OWNER = "owner.pid"  # the test process that started the server


class PostgresCluster:
    def __init__(self, listen: tuple[str, ...] = (), trusted_network: str = ""):
        """`listen`: addresses besides loopback (the test cluster's bridge, for its pods);
        `trusted_network`: the network whose clients may connect (trust, like loopback)."""
        self.listen = ("127.0.0.1", *listen)
        self.trusted_network = trusted_network
        self.bin = server_binaries()
        self.port = free_port()
        remove_abandoned(self.bin)
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX))
        (self.root / OWNER).write_text(str(os.getpid()))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        # PostgreSQL won't run as root; as root, hand the folder to its own user.
        self.user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self.user:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    def _run(self, *command: str) -> None:
        ids = {"user": self.user.pw_uid, "group": self.user.pw_gid} if self.user else {}
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=120, cwd=self.root, env={"LANG": "C.UTF-8"},
            **ids,
        )  # fmt: skip
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{command[0]} failed ({result.returncode}):\n{result.stderr}\n{log}")

    def start(self) -> PostgresCluster:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        if self.trusted_network:
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.write(f"host all all {self.trusted_network} trust\n")
        # Loopback TCP (and `listen`) only, the socket in our own folder; fsync off: throwaway.
        addresses = ",".join(self.listen)
        options = f"-p {self.port} -c listen_addresses={addresses} -k {self.root} -c fsync=off"
        pg_ctl = str(self.bin / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def database(self, name: str) -> str:
        """Create an empty database `name`; returns its SQLAlchemy URL."""
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def remove_abandoned(bin_dir: Path) -> None:
    """Stop and remove the servers of test processes that were killed before their teardown."""
    for root in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            owner = int((root / OWNER).read_text())
            os.kill(owner, 0)
            continue  # its test process still runs
        except (OSError, ValueError):
            pass
        if (root / "data" / "postmaster.pid").exists():
            user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
            command = [*user, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"]
            subprocess.run(command, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
