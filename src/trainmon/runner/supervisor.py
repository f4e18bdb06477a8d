"""One job's supervisor: ``python -m trainmon.runner.supervisor --job-id ID --url URL
--data-dir DIR``, with the command spec as JSON on stdin.

The local executor starts it in a session of its own, so a server restart or crash leaves the
training alone, and writes the spec only once the job is marked running: a job cancelled
while queued is never started (EOF on stdin: the supervisor exits without running anything).

The supervisor runs the command in a process group of its own, captures stdout and stderr
into the job's log, parses tqdm progress from them, heartbeats the server every 0.5 s over
HTTP (the answer says whether a cancel was requested), on cancel sends SIGTERM to the job's
group, waits the grace period and sends SIGKILL, and reports how the command ended, retrying
until the server has it. It is a child subreaper, so grandchildren orphaned by the job are
re-parented to it and cannot escape the cleanup.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx

from trainmon import wire
from trainmon.runner import proc
from trainmon.runner.logfile import DEFAULT_CAP, LogWriter, log_path
from trainmon.runner.outcome import Outcome, decide, error_tail, launch_error_text
from trainmon.runner.tqdm_parse import Progress, ProgressTracker

REPORTER = "supervisor"
HEARTBEAT_SECONDS = 0.5
LEFTOVER_GRACE = 2.0  # for processes a job left behind when it ended on its own
STDERR_KEEP = 32 * 1024
REPORT_DEADLINE = 7 * 24 * 3600.0  # keep the final report this long while the server is down
FINAL_BACKOFF_MAX = 5.0  # the longest wait between attempts at the final report
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Spec:
    argv: list[str]
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    grace: float = 10.0
    token: str | None = None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Spec:
        argv = raw.get("argv")
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv must be a list of strings")
        env = raw.get("env") or {}
        if not isinstance(env, dict):
            raise ValueError("env must be an object")
        cwd = raw.get("cwd")
        token = raw.get("token")
        return cls(
            argv=list(argv),
            cwd=str(cwd) if cwd else None,
            env={str(k): str(v) for k, v in env.items()},
            grace=float(raw.get("grace", 10.0)),
            token=str(token) if token else None,
        )


def child_env(base: dict[str, str], spec: Spec, url: str, job_id: str) -> dict[str, str]:
    """The command's environment: ours, the job's additions, then what the SDK attaches by."""
    env = {**base, **spec.env}
    env.setdefault("PYTHONUNBUFFERED", "1")  # a pipe would otherwise hold print() output back
    env["TRAINMON_URL"] = url
    env["TRAINMON_JOB_ID"] = job_id
    if spec.token:
        env["TRAINMON_TOKEN"] = spec.token
    return env


def progress_fields(progress: Progress) -> dict[str, object]:
    return wire.progress_fields(
        current_step=progress.current_step, total_steps=progress.total_steps, loss=progress.loss
    )


class Reporter:
    """Talks to the server: heartbeats (with parsed progress) from a thread, then the final
    report, resent with the same ``seq`` until the server acknowledges it."""

    def __init__(
        self,
        url: str,
        job_id: str,
        token: str | None,
        *,
        interval: float = HEARTBEAT_SECONDS,
        client: httpx.Client | None = None,
        note: Callable[[str], None] = lambda _text: None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = client or httpx.Client(base_url=url, headers=headers, timeout=5.0)
        self._path = wire.progress_path(job_id)
        self._interval = interval
        self._note = note
        self._seq = wire.SeqCounter()
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._progress_dirty = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cancel_requested = threading.Event()
        self.server_ended: str | None = None  # set when the server says the job is over
        self._was_down = False

    def set_progress(self, progress: Progress) -> None:
        with self._lock:
            self._progress = progress
            self._progress_dirty = True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def _body(self, fields: dict[str, object]) -> bytes:
        seq = self._seq.next()
        return wire.encode_batch(reporter=REPORTER, seq=seq, source="output", fields=fields)

    def _post(self, body: bytes) -> httpx.Response | None:
        try:
            answer = self._client.post(self._path, content=body, headers=JSON)
        except httpx.HTTPError as exc:
            if not self._was_down:
                self._note(f"server unreachable ({type(exc).__name__}); will retry")
            self._was_down = True
            return None
        if self._was_down:
            self._note("server reachable again")
            self._was_down = False
        return answer

    def heartbeat(self) -> None:
        """One batch: no points, parsed progress if it changed, and read the cancel flag."""
        with self._lock:
            progress, dirty = self._progress, self._progress_dirty
            self._progress_dirty = False
        answer = self._post(self._body(progress_fields(progress) if dirty and progress else {}))
        if answer is None or answer.status_code >= 500:
            if dirty:
                with self._lock:
                    self._progress_dirty = True
            return
        status, reply = answer.status_code, wire.parse_answer(answer.content)
        if status == 404:
            self.server_ended = "the job no longer exists on the server"
            return
        if reply is None:
            return
        if reply.cancel_requested:
            self.cancel_requested.set()
        if status == 200 and reply.ended:
            self.server_ended = f"the server marked the job {reply.status}"

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.heartbeat()
            except Exception as exc:  # never let the heartbeat thread die
                self._note(f"heartbeat error: {exc!r}")
            self._stop.wait(max(0.0, self._interval - (time.monotonic() - started)))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def final(self, outcome: Outcome, deadline: float = REPORT_DEADLINE) -> bool:
        """Send the end until acknowledged (or refused for good); ``False`` if given up."""
        self.stop()
        with self._lock:
            progress = self._progress
        fields = progress_fields(progress) if progress is not None else {}
        body = self._body({**fields, **outcome.to_json()})
        give_up = time.monotonic() + deadline
        failures = 0
        while time.monotonic() < give_up:
            answer = self._post(body)
            if answer is not None:
                status = answer.status_code
                if status < 300:
                    return True
                if status < 500 and status not in (408, 429):
                    self._note(f"the server refused the final report ({status}): {answer.text}")
                    return False
            failures += 1
            # Nobody waits on us: backing off is all this loop does.
            time.sleep(wire.backoff(failures, FINAL_BACKOFF_MAX))
        return False

    def close(self) -> None:
        self._client.close()


class Supervisor:
    def __init__(
        self,
        job_id: str,
        spec: Spec,
        *,
        url: str,
        data_dir: Path,
        log_cap: int = DEFAULT_CAP,
        heartbeat: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.job_id = job_id
        self.spec = spec
        self.url = url
        self.log = LogWriter(log_path(data_dir, job_id), cap=log_cap)
        self.reporter = Reporter(url, job_id, spec.token, interval=heartbeat, note=self.log.note)
        self._stderr_tail: deque[bytes] = deque()
        self._stderr_len = 0
        self._tail_lock = threading.Lock()
        self._stop_signal: str | None = None
        self._wake = threading.Event()

    # -- signals ------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_signal = f"the supervisor received {signal.Signals(signum).name}"
        self._wake.set()

    def install_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    # -- output -------------------------------------------------------------------------

    def _pump(self, stream: IO[bytes], is_stderr: bool) -> None:
        fd = stream.fileno()
        tracker = ProgressTracker()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            try:
                self.log.write(chunk)
            except OSError as exc:  # a full disk must not stop the training
                sys.stderr.write(f"log write failed: {exc}\n")
            if is_stderr:
                with self._tail_lock:
                    self._stderr_tail.append(chunk)
                    self._stderr_len += len(chunk)
                    while self._stderr_len - len(self._stderr_tail[0]) > STDERR_KEEP:
                        self._stderr_len -= len(self._stderr_tail.popleft())
            progress = tracker.feed(decoder.decode(chunk))
            if progress is not None:
                self.reporter.set_progress(progress)
        stream.close()

    def stderr_tail(self) -> str:
        with self._tail_lock:
            data = b"".join(self._stderr_tail)
        return error_tail(data[-STDERR_KEEP:])

    # -- processes ----------------------------------------------------------------------

    def _reap(self, child: int, codes: dict[int, int]) -> None:
        """Reap every exited child (ours and re-parented orphans); keep our command's code."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == child:
                codes[child] = os.waitstatus_to_exitcode(status)

    def _others(self, pgid: int) -> list[int]:
        """Live descendants outside the job's group (they called setsid or setpgid)."""
        me = os.getpid()
        return [s.pid for s in proc.descendants(me, proc.all_stats()) if s.pgid != pgid]

    def _stop_job(self, pgid: int, child: int, codes: dict[int, int], grace: float) -> bool:
        """SIGTERM the job's group, wait up to ``grace``, SIGKILL the rest; ``True`` if SIGKILL
        was needed. Returns only once our child is reaped, with its real status in ``codes``."""

        def gone() -> bool:
            # Our child counts as gone once reaped, never when /proc shows a zombie: the main
            # thread of a multi-threaded process is a zombie while its other threads still
            # run or are being torn down, and its exit status cannot be collected yet.
            self._reap(child, codes)
            return child in codes and not proc.live_members(pgid=pgid) and not self._others(pgid)

        result = proc.terminate_group(pgid, grace, is_gone=gone, extra=lambda: self._others(pgid))
        deadline = time.monotonic() + 5.0
        while not gone() and time.monotonic() < deadline:
            time.sleep(0.02)  # SIGKILL sent: the kernel needs a moment to tear them down
        self._wait_child(child, codes)
        return result.killed

    def _wait_child(self, child: int, codes: dict[int, int]) -> None:
        """Block until our child is reaped: how it ended is the one fact the job must record,
        and it has had SIGKILL, so the wait is the kernel's teardown."""
        if child in codes:
            return
        self.log.note("waiting for the command's process to be torn down")
        try:
            _pid, status = os.waitpid(child, 0)
        except ChildProcessError:  # reaped by our other waitpid meanwhile
            self._reap(child, codes)
            return
        codes[child] = os.waitstatus_to_exitcode(status)

    def run(self) -> int:
        proc.become_subreaper()
        self.install_signals()
        spec = self.spec
        self.log.note(f"starting {subprocess.list2cmdline(spec.argv)} in {spec.cwd or os.getcwd()}")
        env = child_env(dict(os.environ), spec, self.url, self.job_id)
        try:
            if not spec.argv:
                raise FileNotFoundError("empty command")
            popen = subprocess.Popen(
                spec.argv,
                cwd=spec.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                process_group=0,
                close_fds=True,
                # From the main thread (no other thread exists yet), so the death signal is
                # tied to a thread that lives as long as the supervisor.
                preexec_fn=proc.die_with_parent(os.getpid()),
            )
        except (OSError, ValueError) as exc:
            error = (
                launch_error_text(spec.argv, spec.cwd, exc)
                if isinstance(exc, OSError)
                else str(exc)
            )
            self.log.note(error)
            return self._finish(decide(returncode=None, grace=spec.grace, launch_error=error))

        child = popen.pid
        assert popen.stdout is not None and popen.stderr is not None
        pumps = [
            threading.Thread(target=self._pump, args=(popen.stdout, False), daemon=True),
            threading.Thread(target=self._pump, args=(popen.stderr, True), daemon=True),
        ]
        for pump in pumps:
            pump.start()
        self.reporter.start()

        codes: dict[int, int] = {}
        cancelled = killed = False
        stopped_by: str | None = None
        while child not in codes:
            self._reap(child, codes)
            if child in codes:
                break
            why = self._stop_signal or self.reporter.server_ended
            if self.reporter.cancel_requested.is_set() or why is not None:
                cancelled = why is None
                stopped_by = why
                self.log.note(
                    f"cancel requested: SIGTERM, then SIGKILL after {spec.grace:g} s"
                    if cancelled
                    else f"{why}: stopping the job"
                )
                killed = self._stop_job(child, child, codes, spec.grace)
                break
            self._wake.wait(0.05)

        if not cancelled and stopped_by is None:
            leftovers = proc.live_members(pgid=child) + [
                s for s in proc.descendants(os.getpid(), proc.all_stats())
            ]
            if leftovers:
                self.log.note(f"stopping {len(leftovers)} process(es) the job left behind")
                self._stop_job(child, child, codes, min(spec.grace, LEFTOVER_GRACE))
        self._wait_child(child, codes)
        popen.returncode = codes.get(child)  # we reaped it; keep Popen from trying again
        for pump in pumps:
            pump.join(timeout=5)
        outcome = decide(
            returncode=codes.get(child),
            started=True,
            grace=spec.grace,
            cancelled=cancelled,
            killed=killed,
            stopped_by=stopped_by,
            stderr_tail=self.stderr_tail(),
        )
        self.log.note(f"ended: {outcome.status}, {outcome.end_reason}")
        return self._finish(outcome)

    def _finish(self, outcome: Outcome) -> int:
        delivered = self.reporter.final(outcome)
        if not delivered:
            self.log.note("could not deliver the final report to the server")
        self.reporter.close()
        self.log.close()
        return 0 if delivered else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m trainmon.runner.supervisor")
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--url", required=True, help="the trainmon server")
    parser.add_argument("--data-dir", required=True, type=Path, help="logs go to DIR/logs")
    parser.add_argument("--log-cap", type=int, default=DEFAULT_CAP, help="bytes of log kept")
    parser.add_argument("--heartbeat", type=float, default=HEARTBEAT_SECONDS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raw = sys.stdin.read()
    if not raw.strip():
        return 3  # the executor did not hand over the job (cancelled meanwhile): run nothing
    try:
        spec = Spec.from_json(json.loads(raw))
    except (ValueError, TypeError) as exc:
        print(f"bad job spec: {exc}", file=sys.stderr)
        return 2
    supervisor = Supervisor(
        args.job_id,
        spec,
        url=args.url,
        data_dir=args.data_dir,
        log_cap=args.log_cap,
        heartbeat=args.heartbeat,
    )
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
