#!/usr/bin/env python3
"""Checks the contracts the module headers state, on the sources as written.

Usage: scripts/check-layers.py [SRC_DIR] [--graph]

Layers, lowest first; a module may include its own headers and those of the
modules listed for it, nothing else:

    common   shared by all: compiler helpers, geometry, text, messages,
             options, locks, counters (its .c files may also use os/)
    os       every system call and kernel file
    thp      hugepage policy            (beside segment, over os)
    numa     topology and memory policy (beside segment, over os)
    segment  SuperSlabs, pools, purge
    tiny     size classes, heaps, slabs (asks segment for everything)
    api      the malloc family and start-up; the only user of hugeslab.h

Also: no system call, no /proc or /sys path and no system header of the OS
layer outside src/os/; no extern declaration inside a function; every main
header (src/<m>/<m>.h) opens with its contract, ending in a "Never:" line.
--graph prints which module includes which, one line per module.
Exit status 1 with one line per violation, 0 with a summary line.
"""
import os
import re
import sys

ALLOWED = {
    "common": {"common"},
    "os": {"common", "os"},
    "thp": {"common", "os", "thp"},
    "numa": {"common", "os", "numa"},
    "segment": {"common", "os", "thp", "numa", "segment"},
    "tiny": {"common", "segment", "tiny"},
    "api": {"common", "os", "thp", "numa", "segment", "tiny", "api"},
}
# common's .c files write messages and read config files through os/.
ALLOWED_IN_SOURCES = {"common": {"os"}}
PUBLIC_HEADER_USERS = {"api"}

# Calls that are the OS layer's alone (a word followed by an opening paren).
SYSCALLS = (
    "mmap munmap mremap madvise mbind syscall getrandom getrusage getcpu get_mempolicy "
    "set_mempolicy open openat read write close pipe pipe2 clock_gettime sysconf "
    "pthread_create pthread_sigmask sigfillset"
).split()
SYSCALL_RE = re.compile(r"(?<![\w.>])(" + "|".join(SYSCALLS) + r"|io_uring_\w+)\s*\(")
OS_HEADERS = {"sys/mman.h", "sys/syscall.h", "sys/random.h", "sys/resource.h", "unistd.h",
              "fcntl.h", "liburing.h", "signal.h"}
KERNEL_PATH_RE = re.compile(r'"/(proc|sys)/')
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
BLOCK_EXTERN_RE = re.compile(r"^[ \t]+extern\b", re.M)


def strip_comments(text):
    """Comments become spaces (lines kept); strings stay."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text[i] in "\"'":
            q, j = text[i], i + 1
            while j < n and text[j] != q:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def strip_strings(code):
    return re.sub(r'"(\\.|[^"\\])*"', '""', code)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    graph = "--graph" in sys.argv
    src = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    src = os.path.normpath(src)
    errors, edges, files = [], {}, 0
    for module in sorted(os.listdir(src)):
        mdir = os.path.join(src, module)
        if not os.path.isdir(mdir):
            continue
        if module not in ALLOWED:
            errors.append(f"src/{module}/: a folder no layer rule knows (add it to {sys.argv[0]})")
            continue
        edges.setdefault(module, set())
        main_header = os.path.join(mdir, module + ".h")
        for name in sorted(os.listdir(mdir)):
            if not name.endswith((".c", ".h")):
                continue
            files += 1
            path = os.path.join(mdir, name)
            rel = f"src/{module}/{name}"
            text = open(path, encoding="utf-8").read()
            code = strip_comments(text)
            for m in INCLUDE_RE.finditer(code):
                kind, inc = m.group(1), m.group(2)
                line = code.count("\n", 0, m.start()) + 1
                if kind == "<":
                    if inc in OS_HEADERS and module != "os":
                        errors.append(f"{rel}:{line}: includes <{inc}>, a system header of the "
                                      "OS layer (use src/os/os.h)")
                    continue
                if inc == "hugeslab.h":
                    edges[module].add("hugeslab.h")
                    if module not in PUBLIC_HEADER_USERS:
                        errors.append(f"{rel}:{line}: includes the public hugeslab.h; only api/ "
                                      "may (fill a statistics struct of the module's own)")
                    continue
                target = inc.split("/")[0] if "/" in inc else None
                if target is None or target not in ALLOWED:
                    continue
                if target != module:
                    edges[module].add(target)
                allowed = set(ALLOWED[module])
                if name.endswith(".c"):
                    allowed |= ALLOWED_IN_SOURCES.get(module, set())
                if target not in allowed:
                    errors.append(f"{rel}:{line}: includes {inc}: {module}/ may include only "
                                  f"{', '.join(sorted(allowed))}")
            if module != "os":
                bare = strip_strings(code)
                for m in SYSCALL_RE.finditer(bare):
                    line = bare.count("\n", 0, m.start()) + 1
                    errors.append(f"{rel}:{line}: calls {m.group(1)}(), a system call outside "
                                  "src/os/")
                for m in KERNEL_PATH_RE.finditer(code):
                    line = code.count("\n", 0, m.start()) + 1
                    errors.append(f"{rel}:{line}: names a /{m.group(1)} file outside src/os/")
            if name.endswith(".c"):
                for m in BLOCK_EXTERN_RE.finditer(code):
                    line = code.count("\n", 0, m.start()) + 1
                    errors.append(f"{rel}:{line}: an extern declaration inside a function "
                                  "(include the header that declares it)")
        if os.path.exists(main_header):
            head = open(main_header, encoding="utf-8").read()
            first = re.match(r"\s*/\*(.*?)\*/", head, re.S)
            if not first or "Never:" not in first.group(1):
                errors.append(f"src/{module}/{module}.h: does not open with its contract "
                              "(a comment ending in a 'Never:' line)")
        else:
            errors.append(f"src/{module}/: no main header src/{module}/{module}.h")
    if graph:
        for module in sorted(edges):
            print(f"{module:8} -> {' '.join(sorted(edges[module])) or '(nothing)'}")
    for e in errors:
        print("FAIL: " + e)
    if errors:
        return 1
    print(f"layers: {files} files of {len(edges)} modules keep their contracts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
