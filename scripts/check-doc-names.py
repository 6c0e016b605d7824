#!/usr/bin/env python3
"""Every code name the docs mention still exists in the repository.

Reads README.md, docs/**/*.md (but docs/performance-history.md, which records designs
that are gone on purpose) and the DocC catalogues, takes each `backticked` span that
looks like a code name, and checks it:

* a path (has a slash, or ends in a source extension): some file of the repository is
  that path, or ends with it (`BLAS/BLAS.swift`, `ProcessExit.swift`);
* an identifier, dotted or called (`RowParallel.blockSize`, `forward(_:into:)`): each
  dotted part's name occurs as a word in the code (Sources, Tests, scripts, Benchmarks,
  Fuzz, Examples, Modules, Package.swift, .ci).

Also: a source path written without backticks (`Sources/A/B.swift` in prose) must
exist; every relative link target (`[x](../scripts/a.sh)`, `[x]: ../Tests/A.swift`)
must exist; and every reference label a doc uses (`[R]`, `[text][R]`) must be defined.

Shell commands, literals, math and anything with spaces are not names and are left
alone. Names from outside the repository that the docs may cite (libraries' APIs,
Python, environment variables of other programs) are listed in EXTERNAL below.
Exit status 1 and one line per missing name when any is gone.
Usage: scripts/check-doc-names.py [repository root]
"""
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
CODE_DIRS = ["Sources", "Tests", "scripts", "Benchmarks", "Fuzz", "Examples", "Modules", ".ci"]
CODE_FILES = ["Package.swift"]
SOURCE_EXT = (".swift", ".c", ".h", ".sh", ".py", ".json", ".npy", ".safetensors", ".md", ".modulemap", ".txt", ".jsonl", ".svg")
SKIP_DOCS = {"docs/performance-history.md"}

# Names the docs cite that live outside this repository (other libraries, tools, specs).
EXTERNAL = {
    # Swift standard library, Foundation, Dispatch, Synchronization, Swift Testing
    "Sendable", "Equatable", "Hashable", "Codable", "Array", "ContiguousArray", "Float", "Double", "Int", "Int32",
    "UInt64", "String", "Data", "URL", "Float16", "BFloat16", "SIMD4", "SIMD8", "SIMD16", "SIMD", "Atomic", "Mutex",
    "DispatchQueue", "concurrentPerform", "withTaskGroup", "TaskLocal", "withValue", "Task", "detached",
    "withUnsafeBufferPointer", "withUnsafeMutableBufferPointer", "UnsafeBufferPointer", "UnsafeMutableBufferPointer",
    "squareRoot", "fma", "addingProduct", "isFinite", "isNaN", "bitPattern", "precondition", "fatalError",
    "withoutActuallyEscaping", "unsafeFlags", "expect", "require", "processExitsWith", "Test", "Suite",
    "FileManager", "mmap", "munmap", "msync", "fsync", "rename", "renameat", "open", "write", "read", "fork",
    "exit", "atexit", "_exit", "pthread_create", "pthread_mutex_t", "sched_yield", "usleep", "getpid", "mknod",
    "malloc", "free", "calloc", "realloc", "mallinfo2", "dlsym", "LD_PRELOAD", "SIGSEGV", "SIGALRM", "O_NOFOLLOW",
    "O_EXCL", "O_CREAT", "O_TRUNC", "EINTR", "ENOSPC", "umask", "fchmod", "lstat", "stat", "fstat",
    # BLAS, OpenBLAS, LAPACK, compilers
    "cblas_sdot", "cblas_saxpy", "cblas_sscal", "cblas_isamax", "cblas_scopy", "cblas_sasum", "cblas_snrm2",
    "sdot", "saxpy", "sscal", "isamax", "snrm2", "sasum", "openblas_get_corename", "openblas_set_num_threads",
    "openblas_get_num_threads", "gotoblas", "OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
    "DYNAMIC_ARCH", "vDSP", "Accelerate", "target", "__builtin_prefetch", "__attribute__", "ext_vector_type",
    # Python, PyTorch, ONNX Runtime, Hugging Face
    "torch", "nn", "LayerNorm", "RMSNorm", "layer_norm", "rms_norm", "functional", "onnxruntime", "numpy",
    "float64", "float32", "float16", "bfloat16", "rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon", "norm_eps",
    "config", "json", "model_type", "hidden_size", "n_embd", "torch_dtype", "safetensors", "__metadata__",
    "dtype", "shape", "data_offsets", "descr", "fortran_order", "npy", "F32", "F16", "BF16",
    "TaskGroup", "cblas.h", "lapacke.h",
}
# Names the docs use as hypothetical examples ("a fourth norm (say `InstanceNorm`)").
EXTERNAL |= {"InstanceNorm"}
# Prefixes of external names: CBLAS and OpenBLAS internals, compiler builtins.
EXTERNAL_PREFIXES = ("cblas_", "openblas_", "gotoblas", "__builtin_", "LAPACKE_", "vDSP_", "torch.", "np.")
# A path is one of the repository's when it starts with one of its top-level entries or
# names a source file; `y.npy` or `config.json` in a doc are a user's files.
REPO_FILE_EXT = (".swift", ".c", ".h", ".sh", ".py", ".md", ".modulemap")

WORD = r"[A-Za-z_][A-Za-z0-9_]*"
IDENT = re.compile(rf"^{WORD}(\.{WORD})*(\((?:[A-Za-z_0-9]*:)*\))?$")
CALLED = re.compile(rf"^({WORD}(\.{WORD})*)\(([^()]*)\)$")


def external(name):
    return name in EXTERNAL or name.startswith(EXTERNAL_PREFIXES)


def tracked_files():
    out = subprocess.run(["git", "-C", ROOT, "ls-files", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if os.path.exists(os.path.join(ROOT, f))]


def code_words(files):
    words = set()
    for f in files:
        words.update(re.findall(WORD, os.path.basename(f)))
        if not (f in CODE_FILES or any(f.startswith(d + "/") for d in CODE_DIRS)):
            continue
        if f.endswith(".md") or not f.endswith((".swift", ".c", ".h", ".sh", ".py", ".modulemap", "run")):
            continue
        try:
            with open(os.path.join(ROOT, f), encoding="utf-8", errors="replace") as fh:
                words.update(re.findall(WORD, fh.read()))
        except OSError:
            pass
    return words


def doc_files(files):
    docs = [f for f in files if f.endswith(".md") and (
        f == "README.md" or f.startswith("docs/") or ".docc/" in f)]
    return [f for f in docs if f not in SKIP_DOCS]


def spans(text):
    """(line, span, is a DocC symbol link) for every backticked span outside fenced blocks."""
    # Fenced code blocks are code, not names: blank them out (keeping line numbers).
    text = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    for line_no, line in enumerate(text.splitlines(), 1):
        for m in re.finditer(r"``([^`\n]+?)``|`([^`\n]+?)`", line):
            if m.group(1) is not None:
                yield line_no, m.group(1).strip(), True
            else:
                yield line_no, m.group(2).strip(), False


def is_path(s, top_level):
    if " " in s or s.startswith(("http", "-", "$", "~", ".", "_")) or re.search(r"[*?<>{}|=()]", s):
        return False
    if s in EXTERNAL:
        return False
    first = s.split("/")[0]
    return (first in top_level and "/" in s) or s.endswith(REPO_FILE_EXT) or re.fullmatch(r"[A-Z][A-Za-z]*/", s) is not None


def path_exists(s, files):
    s = s.rstrip("/").lstrip("./") if s.startswith("./") else s.rstrip("/")
    if os.path.exists(os.path.join(ROOT, s)):
        return True
    return any(f == s or f.endswith("/" + s) or f.startswith(s + "/") or ("/" + s + "/") in ("/" + f) for f in files)


def identifier_parts(s):
    m = CALLED.match(s)
    base = m.group(1) if m else s
    if not IDENT.match(s) and not m:
        return None
    parts = base.split(".")
    # Argument labels are part of the name: forward(_:into:) needs `into` too.
    labels = [l for l in (m.group(3).split(":") if m else []) if l and l != "_" and re.fullmatch(WORD, l)]
    return parts, labels


def looks_like_code(s, parts):
    name = ".".join(parts)
    if s.endswith(")") or "." in name or "_" in name:
        return True
    # camelCase or UpperCamel with a lower-case letter: a Swift/C name, not an English word.
    return bool(re.search(r"[a-z][A-Z]", name)) or bool(re.match(r"^[A-Z][a-z]+[A-Z]", name))


PROSE_PATH = re.compile(r"(?<![\w/.`])((?:[\w+-]+/)+[\w+-]+\.(?:swift|c|h|sh|py))\b")
LINK = re.compile(r"\]\(([^)\s]+)\)")
DEFINITION = re.compile(r"^\s{0,3}\[([^\]]+)\]:\s*(\S+)", re.M)
# [text][label] and the short labels reliability.md uses ([R], [BP], [NPY]).
FULL_REFERENCE = re.compile(r"\]\[([^\]]+)\]")
SHORT_REFERENCE = re.compile(r"(?<![\]\w])\[([A-Z][A-Z0-9]{0,4})\](?![(\[:])")


def link_problems(doc, text, files):
    problems = []
    base = os.path.dirname(doc)
    without_fences = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    lines = without_fences.splitlines()
    definitions = {label.lower() for label, _ in DEFINITION.findall(without_fences)}
    for line_no, line in enumerate(lines, 1):
        targets = LINK.findall(line)
        d = DEFINITION.match(line)
        if d:
            targets.append(d.group(2))
        for target in targets:
            target = target.split("#")[0].strip("<>")
            if not target or re.match(r"^[a-z]+:", target) or target.startswith("doc:"):
                continue
            resolved = os.path.normpath(os.path.join(base, target))
            if not os.path.exists(os.path.join(ROOT, resolved)):
                problems.append(f"{doc}:{line_no}: link target `{target}` does not exist")
        if d:
            continue
        used = FULL_REFERENCE.findall(line) + SHORT_REFERENCE.findall(re.sub(r"`[^`]*`", "", line))
        for label in used:
            if label.lower() not in definitions:
                problems.append(f"{doc}:{line_no}: link label [{label}] has no target")
        for path in PROSE_PATH.findall(re.sub(r"`[^`]*`|\]\([^)]*\)", "", line)):
            if not path_exists(path, files):
                problems.append(f"{doc}:{line_no}: path {path} is not in the repository")
    return problems


def main():
    files = tracked_files()
    words = code_words(files)
    top_level = {f.split("/")[0] for f in files}
    missing = []
    for doc in doc_files(files):
        with open(os.path.join(ROOT, doc), encoding="utf-8") as fh:
            text = fh.read()
        missing += link_problems(doc, text, files)
        for line_no, s, symbol_link in spans(text):
            if symbol_link:
                # ``LayerNorm/forward(_:into:)``: each path component is a symbol.
                gone = []
                for component in s.split("/"):
                    parsed = identifier_parts(component.split("-")[0])
                    if parsed:
                        gone += [p for p in parsed[0] + parsed[1] if p not in words and not external(p)]
                if gone:
                    missing.append(f"{doc}:{line_no}: ``{s}``: no {', '.join(gone)} in the code")
                continue
            if is_path(s, top_level):
                if not path_exists(s, files):
                    missing.append(f"{doc}:{line_no}: path `{s}` is not in the repository")
                continue
            parsed = identifier_parts(s)
            if parsed is None:
                continue
            parts, labels = parsed
            if not looks_like_code(s, parts):
                continue
            if external(s) or external(parts[0]):
                continue
            gone = [p for p in parts + labels if p not in words and not external(p)]
            if gone:
                missing.append(f"{doc}:{line_no}: `{s}`: no {', '.join(gone)} in the code")
    for m in missing:
        print(m)
    print(f"check-doc-names: {len(missing)} missing name(s) in {len(doc_files(files))} documents")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
