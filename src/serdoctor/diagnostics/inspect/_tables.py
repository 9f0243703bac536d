"""Knowledge tables: dangerous callables, harmless constructors, module moves.

Targets are normalized first (C-accelerator and Python 2 module names to the
public ones); :func:`_danger` then says whether calling a target is
dangerous, :func:`_is_safe` whether it is a known-harmless constructor.
``_KNOWN_MOVES`` names modules that moved between library versions.
"""

from __future__ import annotations

import functools
from typing import Final

_ALIASES: Final = {
    "posix": "os",
    "nt": "os",
    "posixpath": "os.path",
    "ntpath": "os.path",
    "__builtin__": "builtins",
    "_operator": "operator",
    "_functools": "functools",
    "_pickle": "pickle",
    "cPickle": "pickle",
    "_io": "io",
    "_socket": "socket",
    "_ctypes": "ctypes",
    "_posixsubprocess": "subprocess",
    "copy_reg": "copyreg",
    "_codecs": "codecs",
    "_sre": "re",
    "cloudpickle.cloudpickle_fast": "cloudpickle.cloudpickle",
    "dill.dill": "dill._dill",
    "_imp": "importlib",
    "imp": "importlib",
}

# module (exact, or parent of the target) -> (category, what it does); every callable counts
_DANGEROUS_MODULES: Final = {
    "subprocess": ("shell", "starts a process"),
    "pty": ("shell", "starts a process on a pseudo-terminal"),
    "commands": ("shell", "runs a shell command"),
    "popen2": ("shell", "runs a shell command"),
    "asyncio.subprocess": ("shell", "starts a process"),
    "multiprocessing": ("shell", "starts processes"),
    "importlib": ("import", "imports a module chosen by the pickle"),
    "pkgutil": ("import", "resolves or imports a module chosen by the pickle"),
    "zipimport": ("import", "imports code from an archive"),
    "runpy": ("exec", "runs a module or file as a script"),
    "code": ("exec", "runs Python source"),
    "codeop": ("exec", "compiles Python source"),
    "timeit": ("exec", "runs Python source"),
    "cProfile": ("exec", "runs Python source"),
    "profile": ("exec", "runs Python source"),
    "pdb": ("exec", "runs Python source under the debugger"),
    "bdb": ("exec", "runs Python source under the debugger"),
    "trace": ("exec", "runs Python source"),
    "doctest": ("exec", "runs Python source"),
    "ctypes": ("native", "calls native code"),
    "cffi": ("native", "calls native code"),
    "socket": ("network", "opens a network connection"),
    "urllib.request": ("network", "fetches a URL"),
    "http.client": ("network", "opens an HTTP connection"),
    "ftplib": ("network", "opens an FTP connection"),
    "smtplib": ("network", "opens an SMTP connection"),
    "telnetlib": ("network", "opens a telnet connection"),
    "requests": ("network", "makes an HTTP request"),
    "httpx": ("network", "makes an HTTP request"),
    "urllib3": ("network", "makes an HTTP request"),
    "webbrowser": ("network", "opens a browser"),
    "shutil": ("file", "copies, moves or deletes files"),
    "sys": ("interpreter", "changes the running interpreter"),
    "gc": ("interpreter", "reaches arbitrary live objects"),
    "signal": ("interpreter", "installs signal handlers"),
    "marshal": ("exec", "builds code objects from bytes"),
    "shelve": ("unpickle", "unpickles another file"),
}

_DANGEROUS_NAMES: Final = {
    "builtins.eval": ("exec", "evaluates a Python expression"),
    "builtins.exec": ("exec", "runs Python source"),
    "builtins.execfile": ("exec", "runs a Python file"),
    "builtins.compile": ("exec", "compiles Python source"),
    "builtins.__import__": ("import", "imports a module chosen by the pickle"),
    "builtins.breakpoint": ("exec", "starts the debugger"),
    "builtins.globals": ("exec", "reaches the loader's globals"),
    "builtins.locals": ("exec", "reaches the loader's locals"),
    "builtins.vars": ("exec", "reaches an object's namespace"),
    "builtins.input": ("interpreter", "waits for terminal input"),
    "builtins.open": ("file", "opens a file"),
    "builtins.exit": ("interpreter", "exits the loading process"),
    "builtins.quit": ("interpreter", "exits the loading process"),
    "builtins.help": ("interpreter", "starts the interactive help"),
    "io.open": ("file", "opens a file"),
    "io.open_code": ("file", "opens a file"),
    "io.FileIO": ("file", "opens a file"),
    "codecs.open": ("file", "opens a file"),
    "fileinput.input": ("file", "opens files"),
    "fileinput.FileInput": ("file", "opens files"),
    "tempfile.mkstemp": ("file", "creates a file"),
    "tempfile.mkdtemp": ("file", "creates a directory"),
    "os.system": ("shell", "runs a shell command"),
    "os.popen": ("shell", "runs a shell command"),
    "os.startfile": ("shell", "opens a file with its application"),
    "os.fork": ("shell", "forks the loading process"),
    "os.forkpty": ("shell", "forks the loading process"),
    "os.kill": ("shell", "sends a signal to a process"),
    "os.killpg": ("shell", "sends a signal to a process group"),
    "os._exit": ("interpreter", "exits the loading process"),
    "os.abort": ("interpreter", "aborts the loading process"),
    "os.remove": ("file", "deletes a file"),
    "os.unlink": ("file", "deletes a file"),
    "os.rmdir": ("file", "deletes a directory"),
    "os.removedirs": ("file", "deletes directories"),
    "os.rename": ("file", "renames a file"),
    "os.renames": ("file", "renames files"),
    "os.replace": ("file", "replaces a file"),
    "os.truncate": ("file", "truncates a file"),
    "os.ftruncate": ("file", "truncates a file"),
    "os.chmod": ("file", "changes file permissions"),
    "os.lchmod": ("file", "changes file permissions"),
    "os.chown": ("file", "changes file ownership"),
    "os.lchown": ("file", "changes file ownership"),
    "os.symlink": ("file", "creates a link"),
    "os.link": ("file", "creates a link"),
    "os.mkdir": ("file", "creates a directory"),
    "os.makedirs": ("file", "creates directories"),
    "os.mkfifo": ("file", "creates a pipe"),
    "os.mknod": ("file", "creates a device node"),
    "os.open": ("file", "opens a file"),
    "os.fdopen": ("file", "opens a file descriptor"),
    "os.write": ("file", "writes to a file descriptor"),
    "os.pwrite": ("file", "writes to a file descriptor"),
    "os.dup2": ("file", "redirects a file descriptor"),
    "os.close": ("file", "closes a file descriptor"),
    "os.closerange": ("file", "closes file descriptors"),
    "os.putenv": ("interpreter", "changes the environment"),
    "os.unsetenv": ("interpreter", "changes the environment"),
    "os.chdir": ("interpreter", "changes the working directory"),
    "os.chroot": ("interpreter", "changes the root directory"),
    "os.umask": ("interpreter", "changes the file mode mask"),
    "os.setuid": ("interpreter", "changes the user"),
    "os.setgid": ("interpreter", "changes the group"),
    "os.seteuid": ("interpreter", "changes the user"),
    "os.setegid": ("interpreter", "changes the group"),
    "os.add_dll_directory": ("native", "changes where native libraries load from"),
    "platform.popen": ("shell", "runs a shell command"),
    "asyncio.create_subprocess_exec": ("shell", "starts a process"),
    "asyncio.create_subprocess_shell": ("shell", "runs a shell command"),
    "pickle.loads": ("unpickle", "unpickles bytes hidden inside this pickle"),
    "pickle.load": ("unpickle", "unpickles another file"),
    "pickle.Unpickler": ("unpickle", "unpickles another stream"),
    "pickle._loads": ("unpickle", "unpickles bytes hidden inside this pickle"),
    "pickle._load": ("unpickle", "unpickles another file"),
    "pickle._Unpickler": ("unpickle", "unpickles another stream"),
    "dill.loads": ("unpickle", "unpickles bytes hidden inside this pickle"),
    "dill.load": ("unpickle", "unpickles another file"),
    "dill._dill.loads": ("unpickle", "unpickles bytes hidden inside this pickle"),
    "dill._dill.load": ("unpickle", "unpickles another file"),
    "dill._dill._eval_repr": ("exec", "evaluates a Python expression"),
    "dill._dill._unmarshal": ("exec", "builds code objects from bytes"),
    "dill._dill._create_filehandle": ("file", "opens (and may write) a file named in the pickle"),
    "cloudpickle.loads": ("unpickle", "unpickles bytes hidden inside this pickle"),
    "cloudpickle.load": ("unpickle", "unpickles another file"),
    "joblib.load": ("unpickle", "unpickles another file"),
    "numpy.load": ("unpickle", "loads a file that may hold pickles"),
    "numpy.lib.npyio.load": ("unpickle", "loads a file that may hold pickles"),
    "pandas.read_pickle": ("unpickle", "unpickles another file"),
    "pandas.eval": ("exec", "evaluates an expression"),
    "torch.load": ("unpickle", "unpickles another file"),
    "yaml.load": ("unpickle", "loads YAML that may build objects"),
    "yaml.unsafe_load": ("unpickle", "loads YAML that builds objects"),
    "jsonpickle.decode": ("unpickle", "builds objects from JSON"),
    "operator.call": ("exec", "calls its argument"),
}

# Names that, reached through getattr chains on anything, mean code execution.
_SUSPICIOUS_ATTRS: Final = frozenset(
    {
        "system",
        "popen",
        "exec",
        "eval",
        "execfile",
        "compile",
        "__import__",
        "import_module",
        "spawn",
        "spawnl",
        "spawnle",
        "spawnlp",
        "spawnlpe",
        "spawnv",
        "spawnve",
        "spawnvp",
        "spawnvpe",
        "execl",
        "execle",
        "execlp",
        "execlpe",
        "execv",
        "execve",
        "execvp",
        "execvpe",
        "posix_spawn",
        "posix_spawnp",
        "Popen",
        "check_output",
        "check_call",
        "getoutput",
        "getstatusoutput",
        "load_module",
        "exec_module",
        "run_path",
        "run_module",
        "loads",
        "unlink",
        "rmtree",
        "remove",
        "rmdir",
        "write_text",
        "write_bytes",
        "touch",
        "__builtins__",
        "__globals__",
        "__subclasses__",
        "__code__",
        "__getattribute__",
        "__loader__",
        "__spec__",
        "f_globals",
        "f_locals",
        "f_builtins",
        "gi_frame",
        "tb_frame",
        "func_globals",
        "__reduce_ex__",
        "__reduce__",
        "__setattr__",
        "__delattr__",
    }
)

# Attributes whose mere lookup through getattr reaches interpreter internals.
_INTERNAL_ATTRS: Final = frozenset(
    {
        "__builtins__",
        "__globals__",
        "__subclasses__",
        "__code__",
        "__getattribute__",
        "__loader__",
        "__spec__",
        "f_globals",
        "f_locals",
        "f_builtins",
        "gi_frame",
        "tb_frame",
        "func_globals",
        "__import__",
        "__dict__",
        "__closure__",
        "__mro__",
        "__bases__",
    }
)

# Known-harmless constructors and helpers (calls to them are not even noted).
_SAFE_PREFIXES: Final = (
    "builtins.set",
    "builtins.frozenset",
    "builtins.list",
    "builtins.dict",
    "builtins.tuple",
    "builtins.bytearray",
    "builtins.bytes",
    "builtins.complex",
    "builtins.int",
    "builtins.float",
    "builtins.str",
    "builtins.object",
    "builtins.slice",
    "builtins.range",
    "builtins.bool",
    "builtins.type",
    "builtins.memoryview",
    "builtins.Ellipsis",
    "builtins.NotImplemented",
    "builtins.property",
    "builtins.staticmethod",
    "builtins.classmethod",
    "builtins.super",
    "builtins.reversed",
    "builtins.enumerate",
    "copyreg.",
    "collections.",
    "datetime.",
    "decimal.",
    "fractions.",
    "uuid.",
    "pathlib.",
    "ipaddress.",
    "re.",
    "array.",
    "codecs.encode",
    "codecs.decode",
    "functools.partial",
    "numpy.",
    "pandas.",
    "zoneinfo.",
    "enum.",
    "types.SimpleNamespace",
    "types.MappingProxyType",
    "types.CodeType",
    "types.FunctionType",
    "types.CellType",
    "types.ModuleType",
    "types.MethodType",
    "types.new_class",
    "operator.attrgetter",
    "operator.itemgetter",
    "operator.methodcaller",
    "operator.getitem",
    "builtins.getattr",
    "cloudpickle.cloudpickle.",
    "dill._dill.",
    "_pickle.PickleBuffer",
    "pickle.PickleBuffer",
    "typing.",
    "dataclasses.",
    "string.",
    "email.",
    "calendar.",
    "time.struct_time",
    "os.stat_result",
    "os.terminal_size",
    "os.times_result",
    "os.uname_result",
    "sqlite3.Row",
    "argparse.Namespace",
    "logging.getLogger",
    "warnings.",
    "builtins.NoneType",
    "builtins.map",
    "builtins.filter",
    "builtins.zip",
    "itertools.",
    "serdoctor.",
)


# (module prefix, distribution, required version range as (min, max-exclusive), message)
_KNOWN_MOVES: Final = (
    (
        "numpy._core",
        "numpy",
        ((2, 0), None),
        "numpy._core exists from numpy 2.0 (pickles written with numpy >= 2 name it); "
        "upgrade numpy to >= 2 here, or re-save the data with numpy < 2",
    ),
    (
        "numpy.core",
        "numpy",
        (None, None),
        "numpy.core is a deprecated alias of numpy._core in numpy >= 2 (loads with a warning)",
    ),
    (
        "pandas.core.indexes.numeric",
        "pandas",
        (None, (2, 0)),
        "pandas.core.indexes.numeric (Int64Index, Float64Index) was removed in pandas 2.0; "
        "load with pandas < 2 and re-save",
    ),
    (
        "pathlib._local",
        None,
        ((3, 13), None),
        "pathlib._local exists from Python 3.13; the pickle was written by Python >= 3.13",
    ),
    (
        "sklearn.externals.joblib",
        "scikit-learn",
        (None, (0, 23)),
        "sklearn.externals.joblib was removed in scikit-learn 0.23",
    ),
    (
        "dill.dill",
        "dill",
        (None, (0, 3, 6)),
        "dill.dill was renamed dill._dill in dill 0.3.6; load with an older dill",
    ),
)


_HIGHER_ORDER: Final = frozenset(
    {
        "builtins.map",
        "builtins.filter",
        "itertools.starmap",
        "functools.reduce",
        "builtins.sorted",
        "builtins.min",
        "builtins.max",
        "builtins.iter",
        "itertools.accumulate",
        "itertools.takewhile",
        "itertools.dropwhile",
        "itertools.filterfalse",
        "itertools.groupby",
        "builtins.apply",
    }
)


@functools.lru_cache(maxsize=8192)
def _normalize(target: str) -> str:
    """Map C-accelerator and Python 2 module names to the public ones."""
    for alias, real in _ALIASES.items():
        if target == alias or target.startswith(alias + "."):
            return real + target[len(alias) :]
    return target


@functools.lru_cache(maxsize=8192)
def _danger(target: str) -> tuple[str, str] | None:
    """``(category, what it does)`` when calling ``target`` is dangerous.

    A dotted target is also checked from each later part on, so re-exports and
    attribute chains (``os.path.os.system``, ``mylib.subprocess.run``) are caught.
    """
    parts = _normalize(target).split(".")
    hit = _danger_exact(parts, _DANGEROUS_MODULES)
    for start in range(1, len(parts) - 1):
        if hit is not None:
            break
        # inside a chain, only names that are unmistakable (``code``, ``trace`` or
        # ``signal`` are common names of harmless submodules)
        hit = _danger_exact(parts[start:], _UNMISTAKABLE_MODULES)
    return hit


_UNMISTAKABLE_MODULES: Final = {
    name: _DANGEROUS_MODULES[name]
    for name in ("subprocess", "pty", "runpy", "importlib", "pkgutil", "ctypes", "marshal")
}

_HARMLESS_IN_DANGEROUS_MODULES: Final = {
    "subprocess": frozenset(
        {
            "CompletedProcess",
            "CalledProcessError",
            "TimeoutExpired",
            "SubprocessError",
            "PIPE",
            "STDOUT",
            "DEVNULL",
        }
    ),
    "sys": frozenset(
        {
            "version_info",
            "flags",
            "float_info",
            "int_info",
            "hash_info",
            "thread_info",
            "getdefaultencoding",
        }
    ),
    "socket": frozenset({"AddressFamily", "SocketKind", "gaierror", "timeout", "herror"}),
}


def _danger_exact(parts: list[str], modules: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """Danger of exactly ``parts`` (no suffix search), with ``modules`` as dangerous."""
    name = ".".join(parts)
    hit = _DANGEROUS_NAMES.get(_normalize(name))
    if hit is not None:
        return hit
    for cut in range(len(parts) - 1, 0, -1):
        module = _normalize(".".join(parts[:cut]))
        hit = modules.get(module)
        if hit is not None:
            if parts[cut] in _HARMLESS_IN_DANGEROUS_MODULES.get(module, ()):
                return None
            return hit
    if (
        _normalize(parts[0]) == "os"
        and len(parts) == 2
        and parts[1].startswith(("exec", "spawn", "posix_spawn"))
    ):
        return ("shell", "runs a program")
    return None


@functools.lru_cache(maxsize=8192)
def _is_safe(target: str) -> bool:
    norm = _normalize(target)
    module, _, name = norm.rpartition(".")
    if module == "builtins" and name[:1].isupper():  # exceptions and warnings
        return True
    return any(norm == p.rstrip(".") or norm.startswith(p) for p in _SAFE_PREFIXES)


def _compat(module: str, name: str) -> tuple[str, str]:
    """Python 2 names as the unpickler maps them for protocols < 3 (fix_imports)."""
    import _compat_pickle

    key = (module, name)
    if key in _compat_pickle.NAME_MAPPING:
        mapped: tuple[str, str] = _compat_pickle.NAME_MAPPING[key]
        return mapped
    if module in _compat_pickle.IMPORT_MAPPING:
        return _compat_pickle.IMPORT_MAPPING[module], name
    return module, name
