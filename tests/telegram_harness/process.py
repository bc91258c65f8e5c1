"""Start and stop the telegram-test-api emulator (a Node server) on a free loopback port."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = Path(__file__).with_name("emulator.js")
PACKAGE_DIR = PROJECT_ROOT / "node_modules" / "telegram-test-api"


class EmulatorError(RuntimeError):
    """The emulator could not be started."""


def free_port(host: str = HOST) -> int:
    """Ask the OS for a currently unused TCP port on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _accepts(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class EmulatorProcess:
    """One running `node emulator.js <port>` process."""

    host: str = HOST
    port: int = 0
    startup_timeout: float = 15.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # stderr goes to a file, not a pipe: nobody reads it while tests run, and a full pipe
    # would block the emulator.
    _stderr: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Base URL of the emulator (bot API under /bot<token>/, client API at the root)."""
        return f"http://{self.host}:{self.port}"

    def start(self, attempts: int = 3) -> None:
        """Start the emulator and return once it accepts connections."""
        node = shutil.which("node")
        if node is None:
            raise EmulatorError("node is not on PATH")
        if not PACKAGE_DIR.is_dir():
            raise EmulatorError(f"{PACKAGE_DIR} is missing: run `npm ci` at {PROJECT_ROOT}")
        last_error = ""
        # The free port is picked here and bound by Node a moment later; another process can
        # take it in between (the emulator maps port 0 to 9000, so it cannot pick its own).
        for _ in range(attempts):
            self.port = free_port(self.host)
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (kept open while Node runs)
            self._proc = subprocess.Popen(
                [node, str(LAUNCHER), str(self.port), self.host],
                cwd=PROJECT_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
            )
            if self._wait_until_accepting():
                return
            last_error = self._reap()
        raise EmulatorError(f"emulator did not start: {last_error or 'no output'}")

    def _wait_until_accepting(self) -> bool:
        """Poll the port until it accepts, the process dies, or the deadline passes."""
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            if _accepts(self.host, self.port):
                return True
            time.sleep(0.02)  # poll interval, bounded by the deadline above
        return False

    def _reap(self) -> str:
        """Kill a failed process and return what it printed to stderr."""
        assert self._proc is not None
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait(timeout=5)
        self._proc = None
        return self._close_stderr()

    def _close_stderr(self) -> str:
        """Close the stderr file and return its text."""
        stderr, self._stderr = self._stderr, None
        if stderr is None:
            return ""
        stderr.seek(0)
        text = stderr.read().decode(errors="replace").strip()
        stderr.close()
        return text

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the emulator to shut down (SIGTERM), killing it if it does not exit in time."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        self._close_stderr()

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
