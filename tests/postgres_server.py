"""A throw-away PostgreSQL cluster for tests: Debian's `postgresql` package, on loopback at a free port.

`start_postgres()` runs `initdb` and `pg_ctl` (as the `postgres` user when the tests run as root:
the server refuses root) in a temp folder and returns the server, or None and the reason it cannot.
`pause()` and `resume()` stop and start the same cluster on the same port, for fault tests.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from support import free_port


@dataclass
class PostgresServer:
    """A running throw-away PostgreSQL cluster on loopback."""

    bin_dir: Path
    base: Path
    port: int
    run_as: list[str]
    databases: list[str] = field(default_factory=list)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        )

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return name

    def drop_database(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.base / "data"), *args]
        return subprocess.run(command, cwd=self.base, capture_output=True, text=True, timeout=120, check=False)

    def pause(self) -> None:
        """Stop the server (as a crash would: immediately), keeping its data and port for `resume`."""
        done = self._pg_ctl("-m", "immediate", "-w", "stop")
        assert done.returncode == 0, done.stderr

    def resume(self) -> None:
        """Start the paused server again on the same port."""
        options = (
            f"-k {self.base} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        done = self._pg_ctl("-l", str(self.base / "server.log"), "-w", "-t", "60", "-o", options, "start")
        assert done.returncode == 0, done.stderr

    def stop(self) -> None:
        subprocess.run(
            [
                *self.run_as,
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.base / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            cwd=self.base,
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(self.base, ignore_errors=True)


def _pg_bin_dir() -> Path | None:
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    found = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    if not found:
        return None
    newest = max(found, key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(newest).parent


def start_postgres() -> tuple[PostgresServer | None, str]:
    """Start a cluster, or say why it cannot start."""
    bin_dir = _pg_bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        return None, "PostgreSQL's initdb/pg_ctl not found (install Debian's `postgresql`: make system-deps)"
    run_as: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            try:
                owner = pwd.getpwnam(name)
                break
            except KeyError:
                continue
        if owner is None or shutil.which("runuser") is None:
            return None, "running as root, and there is no `postgres` user or no `runuser` to drop root"
        run_as = ["runuser", "-u", owner.pw_name, "--"]
    base = Path(tempfile.mkdtemp(prefix="painting-pg-"))
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*run_as, *args], cwd=base, capture_output=True, text=True, timeout=120, check=False)

    init = run(
        str(bin_dir / "initdb"),
        "-D",
        str(base / "data"),
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    )
    if init.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        return None, f"initdb failed: {init.stderr.strip()[-500:]}"
    last_error = ""
    for _ in range(3):  # the free port may be taken between choosing and binding it
        port = free_port()
        options = (
            f"-k {base} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        start = run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(base / "data"),
            "-l",
            str(base / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )
        if start.returncode == 0:
            return PostgresServer(bin_dir=bin_dir, base=base, port=port, run_as=run_as), ""
        log = (base / "server.log").read_text(errors="replace") if (base / "server.log").exists() else ""
        last_error = (start.stderr + log).strip()[-800:]
    shutil.rmtree(base, ignore_errors=True)
    return None, f"pg_ctl start failed: {last_error}"


__all__ = ["PostgresServer", "start_postgres"]
