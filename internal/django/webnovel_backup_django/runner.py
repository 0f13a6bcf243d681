"""Finds and runs the webnovel-backup binary for the management commands."""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading

from django.core.management.base import BaseCommand, CommandError

from . import settings_env

BINARY_ENV = "WEBNOVEL_BACKUP_BIN"
BINARY_NAME = "webnovel-backup"
INSTALL_HINT = (
    "install it with `go install github.com/webnovel/webnovel-backup/cmd/webnovel-backup@latest` "
    "(or download a release binary), then put it on PATH or set %s to its path" % BINARY_ENV
)

# Django's own options, taken by manage.py and not passed on: those that take a value, and
# those that do not.
_DJANGO_VALUE_OPTIONS = ("--settings", "--pythonpath", "--verbosity", "-v")
_DJANGO_FLAG_OPTIONS = ("--traceback", "--no-color", "--force-color", "--skip-checks")


def find_binary():
    """The binary to run: WEBNOVEL_BACKUP_BIN, else webnovel-backup on PATH."""
    path = os.environ.get(BINARY_ENV, "")
    if path:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise CommandError("%s=%s is not an executable file: %s" % (BINARY_ENV, path, INSTALL_HINT))
        return path
    found = shutil.which(BINARY_NAME)
    if not found:
        raise CommandError("%s was not found on PATH: %s" % (BINARY_NAME, INSTALL_HINT))
    return found


def expand_abbreviations(argv, options):
    """argv with abbreviated long options (--comp) written out (--compress), as argparse reads
    them; the binary does not take abbreviations."""
    out = []
    for i, a in enumerate(argv):
        if a == "--":
            return out + argv[i:]
        name, eq, value = a.partition("=")
        if a.startswith("--") and len(name) > 2 and name not in options:
            matches = [o for o in options if o.startswith(name)]
            if len(matches) == 1:
                a = matches[0] + eq + value
        out.append(a)
    return out


def strip_django_options(argv):
    """argv without the options manage.py itself handles (--settings, -v, --traceback, …)."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            out.extend(argv[i:])
            break
        if a in _DJANGO_FLAG_OPTIONS or a in _DJANGO_VALUE_OPTIONS:
            i += 2 if a in _DJANGO_VALUE_OPTIONS else 1
            continue
        if a.split("=", 1)[0] in _DJANGO_VALUE_OPTIONS or re.fullmatch(r"-v[0-3]", a):
            i += 1
            continue
        out.append(a)
        i += 1
    return out


class _Forwarder:
    """Forwards SIGTERM and SIGHUP to the child once; Ctrl-C reaches it from the terminal."""

    SIGNALS = (signal.SIGTERM, signal.SIGHUP)

    def __init__(self, proc):
        self.proc, self.sent, self.saved = proc, False, {}

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        # The terminal sends Ctrl-C to the whole foreground group, the child included;
        # Python must only wait for the child, not die first.
        self.saved[signal.SIGINT] = signal.signal(signal.SIGINT, lambda *_: None)
        for s in self.SIGNALS:
            self.saved[s] = signal.signal(s, self._forward)
        return self

    def _forward(self, signum, _frame):
        # A second signal would make the binary exit at once rather than stop cleanly.
        if not self.sent and self.proc.poll() is None:
            self.sent = True
            self.proc.send_signal(signum)

    def __exit__(self, *exc):
        for s, h in self.saved.items():
            signal.signal(s, h)


def _fileno(stream):
    """The file descriptor behind a Django OutputWrapper or file, or None (e.g. StringIO)."""
    stream = getattr(stream, "_out", stream)
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _pump(src, dst):
    for line in iter(src.readline, ""):
        dst.write(line)
        dst.flush()
    src.close()


def run(args, stdout, stderr):
    """Runs the binary with args, streaming its output to stdout and stderr; returns its exit
    code (128+N when a signal N ended it)."""
    binary = find_binary()
    env = dict(os.environ)
    env.update(settings_env.environment())
    outs = [_fileno(stdout), _fileno(stderr)]
    pipes = [fd if fd is not None else subprocess.PIPE for fd in outs]
    for s in (stdout, stderr):
        getattr(s, "flush", lambda: None)()
    try:
        proc = subprocess.Popen([binary] + list(args), env=env, stdout=pipes[0], stderr=pipes[1],
                                encoding="utf-8", errors="replace")
    except OSError as e:
        raise CommandError("run %s: %s; %s" % (binary, e, INSTALL_HINT))
    threads = []
    for src, dst in ((proc.stdout, stdout), (proc.stderr, stderr)):
        if src is not None:
            t = threading.Thread(target=_pump, args=(src, getattr(dst, "_out", dst)), daemon=True)
            t.start()
            threads.append(t)
    with _Forwarder(proc):
        code = proc.wait()
    for t in threads:
        t.join()
    return 128 - code if code < 0 else code


class BinaryCommand(BaseCommand):
    """A management command that runs one webnovel-backup subcommand.

    From manage.py the arguments are passed on as typed (minus Django's own options), so flags
    the original command did not have reach the binary unchanged and in order; from
    call_command they are rebuilt from the parsed options.
    """

    subcommand = ""
    requires_system_checks = []  # the binary checks the database and storage itself
    _argv = None

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parse_known = parser.parse_known_args

        def parse_args(args=None, namespace=None):
            ns, extra = parse_known(args, namespace)
            ns.passthrough = extra
            return ns

        parser.parse_args = parse_args
        return parser

    def run_from_argv(self, argv):
        parser = self.create_parser(argv[0], argv[1])
        known = [o for action in parser._actions for o in action.option_strings if o.startswith("--")]
        self._argv = strip_django_options(expand_abbreviations(argv[2:], known))
        super().run_from_argv(argv)

    def arguments(self, options):
        """The binary's arguments rebuilt from parsed options (call_command)."""
        raise NotImplementedError

    def handle(self, *args, **options):
        if self._argv is not None:
            argv = list(self._argv)
        else:
            argv = self.arguments(options) + list(options.get("passthrough") or [])
        if options.get("verbosity") == 0 and "--quiet" not in argv and "-q" not in argv:
            argv.append("--quiet")
        code = run([self.subcommand] + argv, self.stdout, self.stderr)
        if code == 0:
            return None
        if self._called_from_command_line:
            sys.exit(code)
        raise CommandError("webnovel-backup %s exited with status %d" % (self.subcommand, code), returncode=code)
