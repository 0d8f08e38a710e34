"""scripts/load-test: a class of students using the web application at once.

Each simulated student repeats the flow a browser goes through: GET the login
page, POST goto_uploads_file with the login, POST uploads_file (multipart:
uid + a real photo from ../shared/images), follow the 303 to the result page
and check that it names the student's login. All students start together
and never pause, so this is the worst moment of a lesson: everyone pressing
Upload at once, over and over.

Reported: latency of the upload-to-result step (POST until the result page
has fully arrived; p50, p95, p99), throughput, errors by kind, and the
worker's resident memory (VmRSS) before, at upload 1,000 and at the end.
"""

import argparse
import asyncio
import errno
import mimetypes
import os
import random
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import benchlib

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BOUNDARY = "----imagenet-classroom-load-test-7d3f2a91c4"


# --- the worker process ----------------------------------------------------

def serve_processes():
    """Pids of running `imagenet-classroom serve` processes."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (argv and Path(argv[0].decode(errors="replace")).name == "imagenet-classroom"
                and b"serve" in argv[1:]):
            found.append(int(entry.name))
    return sorted(found)


def listening_inodes(port):
    """Socket inodes listening on TCP `port` (any address)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def owns_socket(pid, inodes):
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return True
    except OSError:
        pass
    return False


def find_worker(url):
    """The worker behind `url`: the `imagenet-classroom serve` process
    listening on the URL's port (plain HTTP straight to the worker), else
    the only such process running (behind Apache). None, with a reason,
    when that cannot be told."""
    candidates = serve_processes()
    if not candidates:
        return None, "no `imagenet-classroom serve` process is running here"
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    inodes = listening_inodes(port)
    direct = [pid for pid in candidates if owns_socket(pid, inodes)]
    if len(direct) == 1:
        return direct, None
    if len(candidates) == 1:
        return candidates, None
    return None, (f"several `imagenet-classroom serve` processes are running "
                  f"(pids {', '.join(map(str, candidates))}) and none listens on port {port}: "
                  "pass the worker's with --pid")


def memory_kib(pids):
    """Summed (VmRSS, VmHWM) of the pids in KiB, or None when one is gone."""
    rss = hwm = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm += int(line.split()[1])
    return rss, hwm


def cpu_and_faults(pids):
    """CPU time (user + system, seconds) and page faults that needed no disk
    (minflt: mostly fresh memory the kernel had to clear) of the pids so far."""
    ticks = faults = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        faults += int(fields[7])
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS, faults


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


class Worker:
    """An `imagenet-classroom serve --http 127.0.0.1:0` started for one run,
    with its uploads and log in a temporary folder that goes with it."""

    def __init__(self, options):
        self.options = shlex.split(options)

    def __enter__(self):
        self.folder = tempfile.TemporaryDirectory(prefix="load-test.")
        Path(self.folder.name, "uploads").mkdir()
        log = open(Path(self.folder.name) / "worker.log", "wb")
        self.process = subprocess.Popen(
            [benchlib.binary(), "serve", "--http", "127.0.0.1:0",
             "--uploads", str(Path(self.folder.name) / "uploads")] + self.options,
            cwd=benchlib.ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        # The worker prints `listening on URL` once the model is loaded.
        line = self.process.stdout.readline()
        if not line.startswith("listening on "):
            self.process.wait(timeout=30)
            tail = (Path(self.folder.name) / "worker.log").read_text(errors="replace")
            self.folder.cleanup()
            benchlib.die(f"the worker did not start (exit {self.process.returncode}):\n"
                         + "\n".join(tail.splitlines()[-10:]))
        self.url = line.split()[-1]
        self.pid = self.process.pid
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.folder.cleanup()


# --- the students ------------------------------------------------------------

class Run:
    """What all students share: counters, latencies, memory samples."""

    def __init__(self, args, pids, total):
        self.args, self.pids, self.total = args, pids, total
        self.done = 0
        self.upload_ms, self.flow_ms = [], []
        self.errors = Counter()
        self.resent = Counter()  # step -> requests resent after a kept-alive close
        self.memory = {}  # upload number -> (VmRSS, VmHWM)
        self.progress_every = 1000 if total >= 2000 else max(1, total // 5)
        self.start = time.monotonic()

    def finished_one(self):
        self.done += 1
        if self.pids and (self.done == 1000 or self.done % self.progress_every == 0
                          or self.done == self.total):
            sample = memory_kib(self.pids)
            if sample:
                self.memory[self.done] = sample
        if self.done % self.progress_every == 0 or self.done == self.total:
            rate = self.done / (time.monotonic() - self.start)
            rss = f", worker VmRSS {mib(self.memory[self.done][0])}" \
                if self.done in self.memory else ""
            errors = f", {sum(self.errors.values())} errors" if self.errors else ""
            print(f"{self.done}/{self.total} uploads, {rate:.1f}/s{rss}{errors}",
                  file=sys.stderr, flush=True)


class FlowError(Exception):
    """One step of a student's flow went wrong; the text is the error's kind."""


def photos(folder):
    """(file name, multipart part carrying the file) for each photo in `folder`."""
    found = []
    for path in sorted(Path(folder).iterdir()):
        kind = mimetypes.guess_type(path.name)[0]
        if path.is_file() and kind and kind.startswith("image/"):
            head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
                    f'filename="{path.name}"\r\nContent-Type: {kind}\r\n\r\n').encode()
            found.append((path.name, head + path.read_bytes() + f"\r\n--{BOUNDARY}--\r\n".encode()))
    if not found:
        benchlib.die(f"no photos in {folder}")
    return found


def upload_body(login, file_part):
    field = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="uid"\r\n\r\n'
             f"{login}\r\n").encode()
    return field + file_part


async def fetch(http, run, step, method, url, statuses, **options):
    """One request of the flow: its response and body, or FlowError naming
    the step. A kept-alive connection the server closed just as the request
    went out (or reset it) is retried once on a fresh connection, as browsers do (Apache
    closes idle connections when it runs short of them); such retries are
    counted and reported, not hidden."""
    import aiohttp

    for attempt in (1, 2):
        try:
            async with http.request(method, url, allow_redirects=False, **options) as r:
                body = await r.read()
                if r.status not in statuses:
                    raise FlowError(f"{step}: HTTP {r.status}")
                return r, body
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
            # A reset or broken pipe is the same race seen from the socket's
            # side; any other system error is a real failure.
            closed = isinstance(error, aiohttp.ServerDisconnectedError) \
                or error.errno in (errno.ECONNRESET, errno.EPIPE)
            if not closed:
                raise FlowError(f"{step}: {type(error).__name__} ({error})")
            if attempt == 2:
                raise FlowError(f"{step}: server closed the connection twice")
            run.resent[step] += 1
        except asyncio.TimeoutError:
            raise FlowError(f"{step}: no answer within {run.args.timeout:g} s")
        except aiohttp.ClientError as error:
            raise FlowError(f"{step}: {type(error).__name__}")


async def one_flow(http, base, login, file_part, run):
    flow_start = time.monotonic()
    try:
        await fetch(http, run, "GET /", "GET", base, {200})
        await fetch(http, run, "POST /goto_uploads_file", "POST",
                    urljoin(base, "goto_uploads_file"), {200}, data={"uid": login})

        upload_start = time.monotonic()
        r, _ = await fetch(
            http, run, "POST /uploads_file", "POST", urljoin(base, "uploads_file"), {303},
            data=upload_body(login, file_part),
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
        location = r.headers.get("Location")
        if not location:
            raise FlowError("POST /uploads_file: 303 without Location")
        _, page = await fetch(http, run, "GET /result/<id>", "GET",
                              urljoin(str(r.url), location), {200})
        done = time.monotonic()
        if login.encode() not in page:
            raise FlowError("GET /result/<id>: the page does not name the student's login")
        run.upload_ms.append((done - upload_start) * 1e3)
        run.flow_ms.append((done - flow_start) * 1e3)
    except FlowError as error:
        run.errors[str(error)] += 1
    run.finished_one()


async def student(number, uploads, base, pictures, run):
    import aiohttp

    login = f"student{number:0{max(3, len(str(run.args.students)))}d}"
    connector = aiohttp.TCPConnector(ssl=False, limit=6)  # at most a browser's 6 connections
    timeout = aiohttp.ClientTimeout(total=run.args.timeout)
    # With --think, each flow starts after a pause drawn evenly from 0 to
    # twice the mean (the first one too, so arrivals are spread from the
    # start); seeded per student so two runs offer the same load.
    pauses = random.Random(number)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        for k in range(uploads):
            if run.args.think > 0:
                await asyncio.sleep(pauses.uniform(0, 2 * run.args.think))
            _, file_part = pictures[(number + k) % len(pictures)]
            await one_flow(http, base, login, file_part, run)


async def check_reachable(base, timeout):
    import aiohttp

    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False),
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as http:
            async with http.get(urljoin(base, "healthz")) as r:
                body = (await r.read()).decode(errors="replace").strip()
                if r.status != 200:
                    benchlib.die(f"{urljoin(base, 'healthz')} answered HTTP {r.status}: "
                                 "is the worker up?")
                return body
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        benchlib.die(f"cannot reach {base}: {error or type(error).__name__}")


async def main_async(args):
    base = args.url if args.url.endswith("/") else args.url + "/"
    pictures = photos(args.photos)

    if args.pid:
        pids = [int(p) for p in args.pid.split(",")]
        for pid in pids:
            if not Path(f"/proc/{pid}").is_dir():
                benchlib.die(f"--pid {pid}: no such process")
    else:
        pids, reason = find_worker(base)
        if pids is None:
            benchlib.die(f"cannot tell the worker's memory: {reason}")

    health = await check_reachable(base, args.timeout)
    total = args.requests
    run = Run(args, pids, total)
    before = memory_kib(pids)
    cpu_before = cpu_and_faults(pids)
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    per_student, extra = divmod(total, args.students)
    run.start = time.monotonic()
    await asyncio.gather(*(
        student(n + 1, per_student + (n < extra), base, pictures, run)
        for n in range(args.students) if per_student + (n < extra) > 0
    ))
    wall = time.monotonic() - run.start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_after = cpu_and_faults(pids)
    after = memory_kib(pids)

    # The report.
    ok = len(run.upload_ms)
    think = f" --think {args.think:g}" if args.think else ""
    target = f"--serve {shlex.quote(args.serve)}" if args.serve is not None else args.url
    print(f"scripts/load-test --students {args.students} --requests {total}{think} {target}")
    print(f"server: {health}; worker pid {','.join(map(str, pids))}")
    if args.serve is not None:
        print(f"worker started here: imagenet-classroom serve --http 127.0.0.1:0 {args.serve}")
    print(benchlib.machine_summary())
    print(f"{ok} of {total} uploads classified in {wall:.1f} s: "
          f"throughput {ok / wall:.1f} uploads/s")
    if args.think == 0:
        print(f"no pauses: {args.students} uploads always waiting, so latency is about "
              f"{args.students} / throughput (Little's law); --think gives a lesson's pace")
    if ok:
        p = {q: benchlib.percentile(run.upload_ms, q) for q in (50, 95, 99)}
        print(f"upload to result: p50 {p[50]:.0f} ms, p95 {p[95]:.0f} ms, p99 {p[99]:.0f} ms, "
              f"max {max(run.upload_ms):.0f} ms")
        print(f"whole flow (login page to result): p50 "
              f"{benchlib.percentile(run.flow_ms, 50):.0f} ms, p99 "
              f"{benchlib.percentile(run.flow_ms, 99):.0f} ms")
    if run.errors:
        print(f"errors: {sum(run.errors.values())}")
        for kind, count in run.errors.most_common():
            print(f"  {count:6d}  {kind}")
    else:
        print("errors: none")
    for step, count in run.resent.most_common():
        print(f"resent after the server closed a kept-alive connection: {count} x {step}")
    if cpu_before is not None and cpu_after is not None:
        busy = cpu_after[0] - cpu_before[0]
        faults = cpu_after[1] - cpu_before[1]
        print(f"worker CPU: {busy / wall:.2f} cores busy on average, "
              f"{busy / max(ok, 1) * 1e3:.0f} ms of CPU and {faults / max(ok, 1):.0f} "
              "page faults per upload")
    client_cpu = (usage.ru_utime + usage.ru_stime - usage_before.ru_utime
                  - usage_before.ru_stime)
    print(f"this load test's own CPU: {client_cpu / wall:.2f} cores (taken from the same "
          f"{os.cpu_count()} cores when run on the server's machine)")

    if before and after:
        line = f"worker VmRSS: before {mib(before[0])}"
        if 1000 in run.memory:
            line += f", at upload 1,000 {mib(run.memory[1000][0])}"
        line += f", at the end (upload {total:,}) {mib(after[0])}; peak (VmHWM) {mib(after[1])}"
        print(line)
        if 1000 in run.memory and total > 1000:
            growth = (after[0] - run.memory[1000][0]) / run.memory[1000][0] * 100
            print(f"worker VmRSS from upload 1,000 to {total:,}: {growth:+.1f}% "
                  "(target: within 10%)")
        samples = ", ".join(f"{n:,}: {mib(m[0])}" for n, m in sorted(run.memory.items()))
        print(f"worker VmRSS samples: {samples}")
    else:
        print("worker VmRSS: not measured (the worker process went away)")
    return 1 if run.errors else 0


def main():
    benchlib.PROG = "load-test"
    parser = argparse.ArgumentParser(
        prog="scripts/load-test",
        description="Simulate a class of students uploading photos at once.")
    parser.add_argument("url", nargs="?",
                        help="the application's base URL, e.g. https://127.0.0.1:8443/ai/")
    parser.add_argument("--serve", metavar="OPTIONS",
                        help="instead of a URL: start `imagenet-classroom serve --http "
                        "127.0.0.1:0 OPTIONS` (e.g. \"--model models/mobilenetv2.toml "
                        "--workers 2 --threads 1\") with a temporary uploads folder, "
                        "load it, and stop it")
    parser.add_argument("--students", type=int, default=104,
                        help="students at once (default 104)")
    parser.add_argument("--requests", type=int,
                        help="uploads in all, shared among the students (default 10 each)")
    parser.add_argument("--pid", help="the worker's pid (comma-separated for several "
                        "processes); default: found from the running processes")
    parser.add_argument("--photos", default=None,
                        help="folder of photos to upload (default ../shared/images)")
    parser.add_argument("--think", type=float, default=0, metavar="SECONDS",
                        help="mean pause of a student before each upload (default 0: "
                        "everyone uploads again at once, the heaviest load)")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds one request may take before it counts as an error")
    args = parser.parse_args()
    if (args.url is None) == (args.serve is None):
        benchlib.die("give either a URL or --serve OPTIONS (try --help)")
    if args.serve is not None and args.pid:
        benchlib.die("--pid goes with a URL; with --serve the worker is the one started")
    if args.students < 1:
        benchlib.die("--students must be at least 1")
    if args.requests is None:
        args.requests = 10 * args.students
    if args.requests < 1:
        benchlib.die("--requests must be at least 1")
    if args.photos is None:
        args.photos = benchlib.shared_dir() / "images"
    # Each student holds up to six connections: raise the open-files limit
    # so a large class does not run out of file descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.serve is None:
        sys.exit(asyncio.run(main_async(args)))
    with Worker(args.serve) as worker:
        args.url, args.pid = worker.url, str(worker.pid)
        code = asyncio.run(main_async(args))
    sys.exit(code)


if __name__ == "__main__":
    main()
