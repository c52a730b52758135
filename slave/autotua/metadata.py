"""Jobuild metadata, read the way portage reads an ebuild's: by sourcing it in a ``depend`` phase.

One sandboxed bash process (``jobuild.sh depend``, see :mod:`autotua.sandbox`) stays alive and
sources each jobuild in a subshell of its own, as pkgcore's ebuild daemon does; the variables come
back as records on a dedicated descriptor. Results are cached by the digest of the jobuild and of
every template it inherited, so a tree is read once, and a hostile jobuild costs one clear error.

The daemon sources files, not strings: each jobuild and template is written below the sandbox's
work directory (``src/<user>/<name>/<name>-<ver>.jobuild``, ``src/<user>/templates/<t>.jtemplate``),
bound read-only at ``/src`` inside, so bash's own messages and ``die``'s call stack name the
jobuild's file and line as the tree has them (``alice/foo/foo-1.0.jobuild: line 3: ...``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from autotua import AutotuaError
from autotua.atom import JobuildId
from autotua.bridge import METADATA_KEYS, jobuild_sh, parse_record
from autotua.cache import DigestCache
from autotua.params import Parameter, ParameterError, declaration_text, parse_declaration

_WORD_RE = re.compile(r"\A[a-z0-9][a-z0-9_-]*\Z")
_TEMPLATE_NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9_.-]*/[A-Za-z0-9_][A-Za-z0-9_+-]*\Z")
SRC = "/src"  # where the sources are inside the sandbox
_MAX_RECORDS = 1 << 20  # bytes of records per request
_MAX_STDERR = 8192
MAX_SOURCE = 1 << 20  # a jobuild is a small script; anything bigger is a mistake or an attack


class MetadataError(AutotuaError):
    """A jobuild whose metadata cannot be read. ``kind`` is one of:

    ``timeout``, ``forbidden-command``, ``background-process``, ``source-failed``,
    ``template-missing``, ``template-unverified``, ``invalid`` (a bad value), ``sandbox`` (the daemon
    itself failed).
    """

    #: kinds that depend only on the jobuild and its templates, so they are cached like results
    CACHEABLE = frozenset({"forbidden-command", "source-failed", "template-missing", "template-unverified",
                           "invalid", "background-process"})

    def __init__(self, kind: str, message: str, templates: tuple[str, ...] = ()):
        super().__init__(message)
        self.kind = kind
        self.templates = templates  # the templates it inherited or tried to


@dataclass(frozen=True)
class Metadata:
    """A jobuild's variables, whitespace-normalised as portage's metadata cache does."""

    description: str
    src_uri: str = ""
    portconf_uri: str = ""
    depend: str = ""
    sidepend: str = ""
    arch: tuple[str, ...] = ()
    stage3: str = "openrc"
    inherited: tuple[str, ...] = ()
    defined_phases: tuple[str, ...] = ()
    parameters: str = ""  # the PARAMETERS declaration, normalised (autotua.params)

    @property
    def declared(self) -> tuple[Parameter, ...]:
        """The parameters the jobuild takes (checked when the metadata was read)."""
        return parse_declaration(self.parameters) if self.parameters else ()

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping) -> Metadata:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @classmethod
    def from_records(cls, values: Mapping[str, str], where: str) -> Metadata:
        norm = {k: " ".join(values.get(k, "").split()) for k in (*METADATA_KEYS, "INHERITED", "DEFINED_PHASES")}
        if not norm["DESCRIPTION"]:
            raise MetadataError("invalid", f"{where}: DESCRIPTION is empty; every jobuild needs one")
        for kw in norm["ARCH"].split():
            if not _WORD_RE.match(kw):
                raise MetadataError("invalid", f"{where}: ARCH keyword {kw!r} is not a word like 'amd64'")
        stage3 = norm["STAGE3"] or "openrc"
        if not _WORD_RE.match(stage3):
            raise MetadataError("invalid", f"{where}: STAGE3 {stage3!r} is not one flavour like 'openrc' or 'systemd'")
        try:
            parameters = declaration_text(parse_declaration(norm["PARAMETERS"]))
        except ParameterError as e:
            raise MetadataError("invalid", f"{where}: {e}") from None
        return cls(
            description=norm["DESCRIPTION"],
            src_uri=norm["SRC_URI"],
            portconf_uri=norm["PORTCONF_URI"],
            depend=norm["DEPEND"],
            sidepend=norm["SIDEPEND"],
            arch=tuple(norm["ARCH"].split()),
            stage3=stage3,
            inherited=tuple(norm["INHERITED"].split()),
            defined_phases=tuple(norm["DEFINED_PHASES"].split()),
            parameters=parameters,
        )


@dataclass
class Templates:
    """The templates a tree offers the daemon: name -> source, or name -> why it is not trusted."""

    sources: dict[str, bytes] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    _states: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def state(self, name: str) -> str:
        """A short string that changes whenever what ``inherit name`` would do changes."""
        if name not in self._states:
            if name in self.sources:
                self._states[name] = hashlib.sha256(self.sources[name]).hexdigest()
            elif name in self.errors:
                self._states[name] = "untrusted:" + hashlib.sha256(self.errors[name].encode()).hexdigest()
            else:
                return "missing"
        return self._states[name]


@dataclass(frozen=True)
class Limits:
    """What one jobuild may spend at global scope."""

    timeout: float = 10.0  # wall-clock seconds
    cpu: int = 5  # CPU seconds
    memory_kb: int = 256 * 1024
    processes: int = 32  # only enforced where the sandbox runs as nobody


class MetadataDaemon:
    """One long-lived sandboxed ``jobuild.sh depend``; not thread-safe (use one per thread)."""

    def __init__(self, limits: Limits = Limits()):
        self.limits = limits
        self.proc: subprocess.Popen | None = None
        self._workdir: str = ""
        self._src = ""  # the sources, as the daemon names them (SRC, or the host path without a sandbox)
        self._loaded: dict[str, str] = {}  # template name -> state the daemon holds
        self.restarts = 0
        self.requests = 0

    # -- life cycle --------------------------------------------------------------------------------
    def _start(self) -> None:
        from autotua import sandbox

        bash = shutil.which("bash") or "/bin/bash"
        rfd, wfd = os.pipe()
        env = {
            "__AB_FD": str(wfd),
            "__AB_LIMIT_CPU": str(self.limits.cpu),
            "__AB_LIMIT_MEM_KB": str(self.limits.memory_kb),
            "PATH": "/nonexistent",
            "NOCOLOR": "1",
        }
        if sandbox.isolation() == "root":
            env["__AB_LIMIT_NPROC"] = str(self.limits.processes)
        self._workdir = str(sandbox.make_workdir())
        src = os.path.join(self._workdir, "src")
        os.mkdir(src, 0o755)
        self._src = SRC if sandbox.isolation() != "none" else src
        env["__AB_SRC"] = self._src
        try:
            self.proc = sandbox.popen(
                [bash, "--norc", "--noprofile", "/jobuild.sh", "depend"],
                {"/jobuild.sh": jobuild_sh(), SRC: src}, env, workdir=self._workdir, pass_fds=(wfd,),
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except BaseException:
            sandbox.remove_workdir(self._workdir)
            raise
        finally:
            os.close(wfd)
        self._records = os.fdopen(rfd, "rb", buffering=0)
        self._loaded = {}
        self._rbuf = b""
        self._ebuf = b""

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        from autotua import sandbox

        sandbox.kill(proc)
        for f in (proc.stdin, proc.stderr, self._records):
            with contextlib.suppress(OSError):
                f.close()
        if self._workdir:
            sandbox.remove_workdir(self._workdir)
            self._workdir = ""

    def __enter__(self) -> MetadataDaemon:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- requests ----------------------------------------------------------------------------------
    def _send(self, cmd: str, nonce: str, name: str, body: bytes | None) -> None:
        head = f"{cmd} {nonce} {name}" + (f" {len(body)}" if body is not None else "")
        self.proc.stdin.write(head.encode() + b"\n" + (body or b""))

    def _write_source(self, rel: str, data: bytes) -> None:
        """Write a jobuild or template where the daemon sources it (``src/<rel>``, read-only inside)."""
        path = os.path.join(self._workdir, "src", rel)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    def _sync_templates(self, templates: Templates) -> dict[str, str]:
        states = {}
        for name in set(templates.sources) | set(templates.errors) | set(self._loaded):
            state = templates.state(name)
            states[name] = state
            if self._loaded.get(name) == state:
                continue
            if not _TEMPLATE_NAME_RE.match(name):
                continue  # `inherit` takes no such name: it cannot be asked for
            if name in templates.sources and b"\0" in templates.sources[name]:
                self._send("template-error", "-", name, b"it holds a NUL byte: a template is text")
            elif name in templates.sources:
                user, tname = name.split("/", 1)
                self._write_source(f"{user}/templates/{tname}.jtemplate", templates.sources[name])
                self._send("template", "-", name, b"")
            elif name in templates.errors:
                self._send("template-error", "-", name, templates.errors[name].encode())
            else:
                self._send("template-error", "-", name, b"it no longer exists")
            self._loaded[name] = state
        return states

    def extract(self, jid: JobuildId, source: bytes, templates: Templates | None = None) -> dict[str, str]:
        """Source one jobuild; returns its variables or raises MetadataError."""
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            self._start()
        templates = templates or Templates()
        if b"\0" in source:
            # bash cannot hold one, and `read -N` would skip it and read into the next request
            raise MetadataError("invalid", f"{jid}: holds a NUL byte at offset {source.index(0)}; a jobuild is text")
        nonce = secrets.token_hex(8)
        self.requests += 1
        try:
            self._sync_templates(templates)
            self._write_source(jid.path, source)
            self._send("jobuild", nonce, str(jid), b"")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self._died(jid) from None
        return self._interpret(jid, *self._collect(jid, nonce))

    def match(self, pattern: str, value: str) -> bool:
        """Whether all of ``value`` matches the POSIX extended regular expression ``pattern``, as bash's
        ``[[ =~ ]]`` decides, under the sandbox's limits. MetadataError ``invalid`` for a pattern that
        does not compile, ``timeout`` for one that takes too long."""
        if "\0" in pattern + value or "\n" in pattern:
            raise MetadataError("invalid", "a pattern holds no newline, and neither it nor a value a NUL")
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            self._start()
        nonce = secrets.token_hex(8)
        self.requests += 1
        body = f"{pattern}\n{value}".encode()
        try:
            self._send("match", nonce, "-", body)
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self._died(f"/{pattern}/") from None
        _, status, _ = self._collect(f"/{pattern}/", nonce)
        if status == 2:
            raise MetadataError("invalid", f"/{pattern}/ is not a valid extended regular expression")
        if status not in (0, 1):
            raise MetadataError("timeout", f"matching /{pattern}/ took more than {self.limits.cpu} CPU seconds")
        return status == 0

    def _died(self, jid) -> MetadataError:
        err = self._ebuf.decode(errors="replace").strip()
        self.close()
        self.restarts += 1
        return MetadataError("sandbox", f"{jid}: the metadata sandbox died unexpectedly{': ' + err if err else ''}")

    def _collect(self, jid: JobuildId, nonce: str) -> tuple[list[tuple[str, str]], int, str]:
        end_marker = f"AUTOTUA_END={nonce} ".encode()
        err_marker = f"\x1e{nonce}\n".encode()
        records: list[tuple[str, str]] = []
        status: int | None = None
        stderr_done = False
        deadline = time.monotonic() + self.limits.timeout
        sel = selectors.DefaultSelector()
        sel.register(self._records, selectors.EVENT_READ, "r")
        sel.register(self.proc.stderr, selectors.EVENT_READ, "e")
        try:
            while status is None or not stderr_done:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.close()
                    self.restarts += 1
                    raise MetadataError("timeout", f"{jid}: sourcing took longer than {self.limits.timeout:g}s "
                                                   "(an endless loop or a blocking read at global scope?)")
                for key, _ in sel.select(left):
                    chunk = os.read(key.fileobj.fileno(), 65536)
                    if not chunk:
                        raise self._died(jid)
                    if key.data == "r":
                        self._rbuf += chunk
                        if len(self._rbuf) > _MAX_RECORDS:
                            self.close()
                            raise MetadataError("invalid", f"{jid}: printed more than 1 MiB of metadata")
                        *lines, self._rbuf = self._rbuf.split(b"\n")
                        for line in lines:
                            if line.startswith(end_marker):
                                status = int(line[len(end_marker):] or b"1")
                                continue
                            rec = parse_record(line.decode("utf-8", errors="replace"))
                            if rec and status is None:
                                records.append(rec)
                    else:
                        self._ebuf += chunk
                        if err_marker in self._ebuf:
                            stderr_done = True
        finally:
            sel.close()
        text, _, self._ebuf = self._ebuf.partition(err_marker)
        return records, status, text.decode("utf-8", errors="replace")[-_MAX_STDERR:]

    def _interpret(self, jid, records, status, stderr) -> dict[str, str]:
        values: dict[str, str] = {}
        errors: list[tuple[str, str]] = []
        for key, value in records:
            if key == "AUTOTUA_ERROR":
                kind, _, msg = value.partition(" ")
                errors.append((kind, msg))
            elif key == "AUTOTUA_DIE":
                errors.append(("source-failed", "died: " + value.removeprefix("global scope ")))
            elif key in (*METADATA_KEYS, "INHERITED", "DEFINED_PHASES"):
                values[key] = value
        inherited = tuple(values.get("INHERITED", "").split())
        if status != 0 or errors:
            kind, msg = errors[0] if errors else ("source-failed", "")
            tried = tuple(m.split(":", 1)[0].strip() for k, m in errors if k.startswith("template-"))
            if kind.startswith("template-"):
                msg = msg.split(":", 1)[-1].strip()
            # bash's report of the bridge's subshell being killed ("... Killed ( __ab_depend_one ...)")
            # says nothing of the jobuild: the exit status does
            raw = "\n".join(line for line in stderr.splitlines() if "__ab_depend_one" not in line)
            detail = self._tree_paths(_last_lines(raw)) if kind == "source-failed" else ""
            if status == 128 + signal.SIGXCPU:
                kind, msg = "timeout", f"used more than {self.limits.cpu} CPU seconds (an endless loop?)"
            elif kind == "source-failed" and not msg.startswith("died: ") and self._src + "/" in raw:
                # bash said where and what: that is the message ("alice/x/x-1.jobuild: line 3: syntax error ...")
                msg, _, detail = _first_error(detail)
            elif kind == "source-failed" and not msg:
                killed = f", killed by signal {status - 128}" if status and status > 128 else ""
                msg = f"sourcing failed (exit status {status}{killed})"
            if msg.startswith("died: ") and detail.startswith("* ERROR"):
                stack = [line.strip(" *") for line in detail.splitlines()[2:] if line.strip(" *")]
                calls = stack[1:] if stack[:1] == ["Call stack:"] else []
                # where in the jobuild (or template) it died: the first frame that is not the bridge's
                where = next((c.rsplit(": called ", 1)[0] for c in calls if not c.startswith("jobuild.sh,")), None)
                if where:
                    msg = f"{where}: {msg}"
                detail = "\n".join(["Call stack:", *(f"  {c}" for c in calls)]) if len(calls) > 1 else ""
            msg = self._tree_paths(msg)
            raise MetadataError(kind, f"{jid}: {msg}" + (f"\n{detail}" if detail else ""), inherited + tried)
        return values

    def _tree_paths(self, text: str) -> str:
        """The sandbox's paths as the tree's (``/src/alice/x/x-1.jobuild`` -> ``alice/x/x-1.jobuild``)."""
        return text.replace(self._src + "/", "") if self._src else text


def _last_lines(text: str, n: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-n:])


def _first_error(detail: str) -> tuple[str, str, str]:
    """bash's first message (``<file>: line N: what``) and the rest, as str.partition does."""
    first, sep, rest = detail.partition("\n")
    return first.strip(), sep, rest


class MetadataReader:
    """Cached metadata: ``get(jid, source, templates)`` -> :class:`Metadata` or MetadataError.

    The cache key is the jobuild's identity and source digest; an entry also records the state of
    every template the jobuild inherited (or tried to), and is used only while those are unchanged.
    Thread-safe: each thread gets its own daemon.
    """

    NS = "metadata-v3"  # v2: messages name the jobuild's own file and line; v3: PARAMETERS

    def __init__(self, cache: DigestCache | None = None, limits: Limits = Limits()):
        self.cache = cache or DigestCache()
        self.limits = limits
        self._local = threading.local()
        self._daemons: list[MetadataDaemon] = []
        self._lock = threading.Lock()

    def _daemon(self) -> MetadataDaemon:
        d = getattr(self._local, "daemon", None)
        if d is None:
            d = self._local.daemon = MetadataDaemon(self.limits)
            with self._lock:
                self._daemons.append(d)
        return d

    def close(self) -> None:
        with self._lock:
            for d in self._daemons:
                d.close()
            self._daemons.clear()

    def __enter__(self) -> MetadataReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def key(jid: JobuildId, source: bytes) -> str:
        return hashlib.sha256(str(jid).encode() + b"\0" + source).hexdigest()

    def cached(self, jid: JobuildId, source: bytes, templates: Templates) -> Metadata | MetadataError | None:
        return self._from_entry(self.cache.get(self.NS, self.key(jid, source)), templates)

    @staticmethod
    def _from_entry(entry, templates: Templates):
        if entry is None:
            return None
        if any(templates.state(name) != state for name, state in entry["templates"].items()):
            return None
        if "error" in entry:
            return MetadataError(entry["error"], entry["message"])
        return Metadata.from_json(entry["metadata"])

    def get(self, jid: JobuildId, source: bytes, templates: Templates | None = None) -> Metadata:
        if len(source) > MAX_SOURCE:
            raise MetadataError("invalid", f"{jid}: {len(source)} bytes; a jobuild may have {MAX_SOURCE} at most")
        templates = templates or Templates()
        hit = self.cached(jid, source, templates)
        if isinstance(hit, MetadataError):
            raise hit
        if hit is not None:
            return hit
        entry = self._extract(jid, source, templates)
        if not entry.pop("uncacheable", False):
            self.cache.put(self.NS, self.key(jid, source), entry)
        result = self._from_entry(entry, templates)
        if isinstance(result, MetadataError):
            raise result
        return result

    def match(self, pattern: str, value: str) -> bool:
        """:meth:`MetadataDaemon.match`, cached by pattern and value (the answer depends on nothing else)."""
        key = hashlib.sha256(f"{pattern}\0{value}".encode("utf-8", errors="surrogatepass")).hexdigest()
        hit = self.cache.get("match-v1", key)
        if hit is not None:
            if "error" in hit:
                raise MetadataError(hit["error"], hit["message"])
            return hit["match"]
        try:
            found = self._daemon().match(pattern, value)
        except MetadataError as e:
            if e.kind == "invalid":
                self.cache.put("match-v1", key, {"error": e.kind, "message": str(e)})
            raise
        self.cache.put("match-v1", key, {"match": found})
        return found

    def _check_patterns(self, md: Metadata, where: str) -> None:
        """A pattern parameter's pattern must compile and its default match it."""
        for p in md.declared:
            if p.kind != "pattern":
                continue
            try:
                ok = self.match(p.pattern, p.default or "")
            except MetadataError as e:
                raise MetadataError("invalid", f"{where}: PARAMETERS {p.name}: {e}") from None
            if p.default is not None and not ok:
                raise MetadataError("invalid", f"{where}: PARAMETERS {p.name}: its default {p.default!r} does not "
                                               f"match /{p.pattern}/")

    def _extract(self, jid: JobuildId, source: bytes, templates: Templates) -> dict:
        try:
            md = Metadata.from_records(self._daemon().extract(jid, source, templates), str(jid))
            self._check_patterns(md, str(jid))
            names, entry = md.inherited, {"metadata": md.to_json()}
        except MetadataError as e:
            names, entry = e.templates, {"error": e.kind, "message": str(e)}
            if e.kind not in MetadataError.CACHEABLE:
                entry["templates"] = {}
                return entry | {"uncacheable": True}
        entry["templates"] = {n: templates.state(n) for n in names}
        return entry
