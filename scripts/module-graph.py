#!/usr/bin/env python3
"""Check that the crate's module graph flows one way.

Reads every source file of the library crate (the files reachable from src/lib.rs through
`mod x;` declarations), builds a graph with one node per .rs file, and fails (exit 1) when

* two or more files depend on each other in a circle (every cycle is printed as file
  paths, each edge with the line that makes it), or
* a file depends on a file of a higher (or the same) layer of another module (LAYERS
  below).

On success it prints one line: how many files and edges it saw.

What counts as a dependency of file A on file B
-----------------------------------------------
* A `use` item in A naming an item that B defines: `use crate::…`, `use super::…`,
  `use self::…`, and paths that start with a module or name A has in scope (its child
  modules, names it imported). Nested groups (`use crate::{a::{b, c}, d}`) count leaf by
  leaf. `pub use` counts the same way (a mod.rs re-exporting a child depends on it).
* A path in A's code that names an item B defines: `crate::x::y`, `super::y`,
  `child::y`, `imported_module::y`.
* A path resolves to the file that DEFINES the item: `crate::proxy::ctx::Operation` is
  src/proxy/ctx.rs; `crate::routing::Table`, re-exported by routing/mod.rs from
  routing/table.rs, is src/routing/table.rs (re-exports, glob re-exports and private
  imports of the module in the middle are followed). A name the script cannot find being
  re-exported is taken to be defined where the path stops (`crate::proxy::X` → mod.rs).
* Importing a module itself (`use crate::routing;`) is no dependency; the paths used
  through it are (`routing::state::X` → src/routing/state.rs).
* Declaring a child (`mod child;`) is no dependency. Parent and child are ordinary nodes:
  if mod.rs uses its child and the child uses an item defined in mod.rs (`super::Item`),
  that is a cycle like any other. Items a child needs from its parent belong in a sibling
  file both can use, so a mod.rs is either a facade (declarations and re-exports) or the
  top of its subtree, never the middle.
* Test code is left out: items under `#[cfg(test)]` (typically `mod tests { … }`) and
  files named tests.rs. Comments, doc comments and string literals are ignored.

Layers
------
LAYERS lists the modules from the bottom up: top-level modules, or a module path such as
`quota::local` where one submodule sits lower than the rest of its module. A file belongs
to its longest matching entry. It may depend on files of its own entry and of entries in
LOWER layers only; entries sharing a layer may not depend on each other. A new top-level
module must be added to LAYERS (the script says so).

Usage: python3 scripts/module-graph.py [--edges] [--src DIR]
  --edges  also print every edge (file -> file) with the line that makes it.
  --src    the crate's source directory (default: src/ next to this script's directory).
Needs only python3 (3.8 or later).
"""

import os
import re
import sys
from collections import defaultdict

# The crate's modules, bottom layer first. An entry is a top-level module (`routing`) or
# a module path (`quota::local`); a file belongs to its longest matching entry. A file may
# use files of its own entry and of entries in LOWER layers only: entries that share a
# layer are independent of each other. Keep in sync with the map at the top of src/lib.rs.
LAYERS = [
    # Shared vocabulary: imports nothing of the crate.
    ["vocab"],
    # Utilities without domain knowledge; `request_scope` is where the connection loop and
    # the proxy meet.
    ["clock", "random_id", "fault", "logbuf", "request_scope", "listener", "cli"],
    # Wire schemas, byte-level scanners, and the configuration (which owns its settings).
    ["wire", "sse", "body", "config"],
    # Error answers, usage mapping, metrics, provider dialects, the spend ledger.
    ["error", "usage", "metrics", "providers", "spend"],
    # Translation between dialects; routing (snapshot table, backend state, selection).
    ["translate", "routing"],
    # A user's in-process limiter state, which the user directory carries across reloads.
    ["quota::local"],
    # Token -> user.
    ["auth"],
    # The immutable per-request snapshot (table + users).
    ["snapshot"],
    # Redis-shared state (fleet-wide limits, cooldowns).
    ["shared"],
    # The user-quota enforcer (local or shared); the Responses API conversation store.
    ["quota", "conversations"],
    # Local endpoints, health checks, config reload.
    ["api", "health", "reload"],
    # The proxy hooks and the client connection loop (they meet in `request_scope`).
    ["proxy", "connection"],
    # Wiring.
    ["app"],
    ["demo"],
]

ITEM_KEYWORDS = {"fn", "struct", "enum", "trait", "type", "const", "static", "union", "mod"}


# ---------------------------------------------------------------------------------------
# Lexing: identifiers, `::` and punctuation, with comments, strings, chars and numbers
# dropped. Each token is (text, line).
# ---------------------------------------------------------------------------------------

IDENT_START = re.compile(r"[A-Za-z_]")
IDENT_CHAR = re.compile(r"[A-Za-z0-9_]")


def lex(text):
    tokens = []
    i = 0
    n = len(text)
    line = 1

    def count_lines(a, b):
        return text.count("\n", a, b)

    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
            continue
        if c.isspace():
            i += 1
            continue
        # comments
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            depth = 0
            j = i
            while j < n:
                if text.startswith("/*", j):
                    depth += 1
                    j += 2
                elif text.startswith("*/", j):
                    depth -= 1
                    j += 2
                    if depth == 0:
                        break
                else:
                    j += 1
            line += count_lines(i, j)
            i = j
            continue
        # raw strings: r"..", r#".."#, br"..", cr#".."#
        m = re.match(r'(?:b|c)?r(#*)"', text[i : i + 300])
        if m and (i == 0 or not IDENT_CHAR.match(text[i - 1])):
            hashes = m.group(1)
            end = text.find('"' + hashes, i + m.end())
            j = n if end < 0 else end + 1 + len(hashes)
            line += count_lines(i, j)
            i = j
            continue
        # strings: "..", b"..", c".."
        if c == '"' or (c in "bc" and text.startswith('"', i + 1) and (i == 0 or not IDENT_CHAR.match(text[i - 1]))):
            j = i + (1 if c == '"' else 2)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            line += count_lines(i, j)
            i = j
            continue
        # byte char b'x'
        if c == "b" and text.startswith("'", i + 1) and (i == 0 or not IDENT_CHAR.match(text[i - 1])):
            j = i + 2
            while j < n and text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        # char literal or lifetime
        if c == "'":
            if text.startswith("\\", i + 1):
                j = i + 2
                while j < n and text[j] != "'":
                    j += 2 if text[j] == "\\" else 1
                i = j + 1
            elif i + 2 < n and text[i + 2] == "'":
                i += 3
            else:  # lifetime or label
                j = i + 1
                while j < n and IDENT_CHAR.match(text[j]):
                    j += 1
                i = j
            continue
        # raw identifier r#name
        if text.startswith("r#", i) and i + 2 < n and IDENT_START.match(text[i + 2]):
            j = i + 2
            while j < n and IDENT_CHAR.match(text[j]):
                j += 1
            tokens.append((text[i + 2 : j], line))
            i = j
            continue
        if IDENT_START.match(c):
            j = i
            while j < n and IDENT_CHAR.match(text[j]):
                j += 1
            tokens.append((text[i:j], line))
            i = j
            continue
        if c.isdigit():
            j = i
            while j < n and (IDENT_CHAR.match(text[j]) or (text[j] == "." and j + 1 < n and text[j + 1].isdigit())):
                j += 1
            i = j
            continue
        if text.startswith("::", i):
            tokens.append(("::", line))
            i += 2
            continue
        if c == "$" and text.startswith("crate", i + 1):
            # `$crate` in macro bodies means this crate.
            i += 1
            continue
        tokens.append((c, line))
        i += 1
    return tokens


def match_close(tokens, i):
    """Index of the bracket closing the one at tokens[i] (any of ( [ {)."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    depth = 0
    for j in range(i, len(tokens)):
        t = tokens[j][0]
        if t in pairs:
            depth += 1
        elif t in (")", "]", "}"):
            depth -= 1
            if depth == 0:
                return j
    return len(tokens) - 1


def is_cfg_test(tokens, i):
    """tokens[i] is `#` starting `#[cfg(test)]`."""
    seq = [t for t, _ in tokens[i : i + 7]]
    return seq == ["#", "[", "cfg", "(", "test", ")", "]"]


def strip_cfg_test(tokens):
    """Drop every item annotated `#[cfg(test)]` (with its other attributes)."""
    out = []
    i = 0
    n = len(tokens)
    while i < n:
        if tokens[i][0] == "#" and is_cfg_test(tokens, i):
            j = i + 7
            # further attributes
            while j < n and tokens[j][0] == "#" and j + 1 < n and tokens[j + 1][0] == "[":
                j = match_close(tokens, j + 1) + 1
            # the item: a `use` runs to `;`; anything else to the first `;` at depth 0 or
            # the `}` that closes its first top-level block.
            k = j
            while k < n and tokens[k][0] in ("pub", "(", "crate", "super", "in", "self", ")"):
                k += 1
            if k < n and tokens[k][0] == "use":
                while j < n and tokens[j][0] != ";":
                    j += 1
                i = j + 1
                continue
            while j < n:
                t = tokens[j][0]
                if t in ("(", "["):
                    j = match_close(tokens, j) + 1
                    continue
                if t == "{":
                    j = match_close(tokens, j) + 1
                    break
                if t == ";":
                    j += 1
                    break
                j += 1
            i = j
            continue
        out.append(tokens[i])
        i += 1
    return out


# ---------------------------------------------------------------------------------------
# Module tree
# ---------------------------------------------------------------------------------------


class Module:
    def __init__(self, path, file):
        self.path = path  # tuple of names, () is the crate root
        self.file = file  # the .rs file holding it (inline modules share their parent's)
        self.children = {}  # name -> Module
        self.bindings = {}  # name -> absolute path tuple; from `use` (any visibility)
        self.public = set()  # names of bindings made by `pub use` (what a glob sees)
        self.globs = []  # absolute module paths imported with `use x::*`
        self.defs = set()  # names of items defined here


class Crate:
    def __init__(self, src):
        self.src = src
        self.modules = {}  # path tuple -> Module
        self.files = {}  # file -> token list (test code stripped)
        self.uses = defaultdict(list)  # file -> [(module path, segments, line, glob)]
        self.code_paths = defaultdict(list)  # file -> [(module path, segments, line)]
        self.missing = []

    # -- loading -------------------------------------------------------------------------

    def load(self):
        root = os.path.join(self.src, "lib.rs")
        self.load_file((), root, os.path.join(self.src))

    def load_file(self, path, file, dir_for_children):
        with open(file, encoding="utf-8") as f:
            tokens = strip_cfg_test(lex(f.read()))
        self.files[file] = tokens
        module = Module(path, file)
        self.modules[path] = module
        self.scan(module, tokens, 0, len(tokens), dir_for_children)
        return module

    def scan(self, module, tokens, start, end, child_dir):
        """Collect child modules, definitions, uses and code paths of `module` from
        tokens[start:end]."""
        file = module.file
        i = start
        depth = 0  # brace depth inside this module's body
        while i < end:
            t, line = tokens[i]
            if t == "{":
                depth += 1
            elif t == "}":
                depth -= 1
            elif t == "mod" and i + 1 < end and re.match(r"\w+$", tokens[i + 1][0]) and (i == 0 or tokens[i - 1][0] != "::"):
                name = tokens[i + 1][0]
                nxt = tokens[i + 2][0] if i + 2 < end else ""
                if nxt == ";":
                    child_file, grand_dir = self.child_file(child_dir, name)
                    if child_file is None:
                        self.missing.append((file, line, name))
                    elif os.path.basename(child_file) != "tests.rs":
                        child = self.load_file(module.path + (name,), child_file, grand_dir)
                        module.children[name] = child
                    module.defs.add(name)
                    i += 3
                    continue
                if nxt == "{":
                    close = match_close(tokens, i + 2)
                    child = Module(module.path + (name,), file)
                    self.modules[child.path] = child
                    module.children[name] = child
                    module.defs.add(name)
                    self.scan(child, tokens, i + 3, close, os.path.join(child_dir, name))
                    i = close + 1
                    continue
            elif t == "use" and (i == 0 or tokens[i - 1][0] != "::"):
                semi = i
                while semi < end and tokens[semi][0] != ";":
                    semi += 1
                public = i > 0 and tokens[i - 1][0] in ("pub", ")")
                for segs, alias, glob in parse_use_tree([x for x, _ in tokens[i + 1 : semi]]):
                    self.uses[file].append((module.path, segs, alias, line, glob, public))
                i = semi + 1
                continue
            elif t in ITEM_KEYWORDS and depth == 0 and i + 1 < end and re.match(r"[A-Za-z_]\w*$", tokens[i + 1][0]):
                module.defs.add(tokens[i + 1][0])
            elif t == "macro_rules" and i + 2 < end and tokens[i + 1][0] == "!":
                module.defs.add(tokens[i + 2][0])
            elif re.match(r"[A-Za-z_]\w*$", t) and i + 2 < end and tokens[i + 1][0] == "::" and (i == 0 or tokens[i - 1][0] != "::"):
                segs = [t]
                j = i + 1
                while j + 1 < end and tokens[j][0] == "::" and re.match(r"[A-Za-z_]\w*$", tokens[j + 1][0]):
                    segs.append(tokens[j + 1][0])
                    j += 2
                self.code_paths[file].append((module.path, segs, line))
                i = j
                continue
            i += 1

    def child_file(self, child_dir, name):
        flat = os.path.join(child_dir, name + ".rs")
        nested = os.path.join(child_dir, name, "mod.rs")
        if os.path.exists(flat):
            return flat, os.path.join(child_dir, name)
        if os.path.exists(nested):
            return nested, os.path.join(child_dir, name)
        return None, None

    # -- bindings ------------------------------------------------------------------------

    def absolute(self, module_path, segs):
        """Absolute path of `segs` as written in module `module_path`, or None when it
        does not start in this crate."""
        if not segs:
            return None
        head = segs[0]
        if head == "crate":
            return tuple(segs[1:])
        if head in ("super", "self"):
            base = list(module_path)
            k = 0
            while k < len(segs) and segs[k] in ("super", "self"):
                if segs[k] == "super":
                    if not base:
                        return None
                    base.pop()
                k += 1
            return tuple(base) + tuple(segs[k:])
        module = self.modules.get(module_path)
        # names in scope: child modules, then imports of this module or its inline parents
        # (a `use` inside a fn body is recorded on the enclosing module).
        if module is not None and head in module.children:
            return module.path + tuple(segs)
        if module is not None and head in module.bindings:
            return module.bindings[head] + tuple(segs[1:])
        return None

    def bind_uses(self):
        """Record every `use` as a binding of its module. Runs to a fixed point because
        a `use` may start with a name another `use` binds."""
        for _ in range(4):
            for file, uses in self.uses.items():
                for module_path, segs, alias, _line, glob, public in uses:
                    module = self.modules[module_path]
                    target = self.absolute(module_path, segs)
                    if target is None:
                        continue
                    if glob:
                        if target not in module.globs:
                            module.globs.append(target)
                        continue
                    name = alias if alias else (segs[-1] if segs[-1] != "self" else None)
                    if segs[-1] == "self":
                        target = target[:-1] if target and target[-1] == "self" else target
                        name = alias if alias else (target[-1] if target else None)
                    if name and name != "_":
                        module.bindings[name] = target
                        if public:
                            module.public.add(name)

    # -- resolution ----------------------------------------------------------------------

    def resolve(self, path, seen=None):
        """The file defining the item at absolute `path`, or None when `path` names a
        module (or nothing of this crate)."""
        seen = seen or set()
        if path in seen:
            return None
        seen.add(path)
        m = self.modules[()]
        for k, seg in enumerate(path):
            if seg in m.children:
                m = m.children[seg]
                continue
            rest = path[k + 1 :]
            if seg in m.defs:
                return m.file
            if seg in m.bindings:
                return self.resolve(m.bindings[seg] + rest, seen)
            for g in m.globs:
                gm = self.modules.get(g)
                if gm is not None and (seg in gm.defs or seg in gm.public or seg in gm.children or gm.globs):
                    found = self.resolve(g + (seg,) + rest, seen)
                    if found is not None:
                        return found
            return m.file
        return None  # a module

    def in_crate(self, path):
        return bool(path) and path[0] in self.modules[()].children

    def edges(self):
        """{(from file, to file): (line, path text)} for every dependency."""
        out = {}

        def add(file, target_path, line, text):
            if target_path is None or not self.in_crate(target_path):
                return
            to = self.resolve(target_path)
            if to is None or to == file:
                return
            out.setdefault((file, to), (line, text))

        for file, uses in self.uses.items():
            for module_path, segs, _alias, line, glob, _public in uses:
                target = self.absolute(module_path, segs)
                if target is None or glob:
                    # a glob depends on everything it can see: the module's own items and
                    # its public re-exports
                    if target is not None and glob and target in self.modules:
                        gm = self.modules[target]
                        for name in sorted(gm.defs | gm.public):
                            if name not in gm.children:
                                add(file, target + (name,), line, "::".join(segs) + "::*")
                    continue
                if segs[-1] == "self" and target and target[-1] == "self":
                    target = target[:-1]
                add(file, target, line, "::".join(segs))
        for file, paths in self.code_paths.items():
            for module_path, segs, line in paths:
                add(file, self.absolute(module_path, segs), line, "::".join(segs))
        return out


def parse_use_tree(toks):
    """Leaves of a use tree as (segments, alias, glob). Leading `pub`/`pub(...)` already
    excluded by the caller starting after `use`."""
    pos = 0
    leaves = []

    def tree(prefix):
        nonlocal pos
        segs = list(prefix)
        if pos < len(toks) and toks[pos] == "::":
            pos += 1  # leading `::` (extern path)
            segs.append("::")
        while pos < len(toks):
            t = toks[pos]
            if t == "{":
                pos += 1
                while pos < len(toks) and toks[pos] != "}":
                    tree(segs)
                    if pos < len(toks) and toks[pos] == ",":
                        pos += 1
                pos += 1
                return
            if t == "*":
                pos += 1
                leaves.append((segs, None, True))
                return
            if re.match(r"[A-Za-z_]\w*$", t):
                segs = segs + [t]
                pos += 1
                if pos < len(toks) and toks[pos] == "::":
                    pos += 1
                    continue
                alias = None
                if pos < len(toks) and toks[pos] == "as":
                    alias = toks[pos + 1] if pos + 1 < len(toks) else None
                    pos += 2
                leaves.append((segs, alias, False))
                return
            pos += 1  # unexpected token: skip
            return

    tree([])
    return [(s, a, g) for s, a, g in leaves if s and s[0] != "::"]


# ---------------------------------------------------------------------------------------
# Graph checks
# ---------------------------------------------------------------------------------------


def strongly_connected(nodes, adj):
    index = {}
    low = {}
    on_stack = set()
    stack = []
    out = []
    counter = [0]

    def visit(v):
        work = [(v, iter(sorted(adj.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(adj.get(w, ())))))
                    advanced = True
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def cycles_in(component, adj):
    """Short cycles covering every edge inside one strongly connected component: for each
    edge a -> b inside it, the shortest path back from b to a."""
    members = set(component)
    found = []
    seen = set()
    for a in component:
        for b in sorted(adj.get(a, ())):
            if b not in members:
                continue
            # BFS b -> a
            prev = {b: None}
            queue = [b]
            while queue and a not in prev:
                nxt = []
                for v in queue:
                    for w in sorted(adj.get(v, ())):
                        if w in members and w not in prev:
                            prev[w] = v
                            nxt.append(w)
                queue = nxt
            if a not in prev:
                continue
            path = [a]
            v = a
            while v is not None:
                v = prev[v]
                if v is not None:
                    path.append(v)
            cycle = [a] + list(reversed(path[1:]))  # a -> b -> ... -> (back to a)
            key = frozenset(zip(cycle, cycle[1:] + cycle[:1]))
            if key not in seen:
                seen.add(key)
                found.append(cycle)
    found.sort(key=len)
    return found


def main(argv):
    src = "src"
    show_edges = "--edges" in argv
    if "--src" in argv:
        src = argv[argv.index("--src") + 1]
    here = os.path.dirname(os.path.abspath(__file__))
    if not os.path.isabs(src):
        src = os.path.join(os.path.dirname(here), src)
    crate = Crate(src)
    crate.load()
    crate.bind_uses()
    edges = crate.edges()
    rel = lambda f: os.path.relpath(f, os.path.dirname(src))  # noqa: E731
    adj = defaultdict(set)
    for (a, b) in edges:
        adj[a].add(b)
    if show_edges:
        for (a, b), (line, text) in sorted(edges.items()):
            print(f"{rel(a)}:{line} -> {rel(b)}   ({text})")

    problems = 0
    for file, line, name in crate.missing:
        print(f"error: {rel(file)}:{line}: `mod {name};` has no file", file=sys.stderr)
        problems += 1

    # layers
    layer_of = {}
    for k, names in enumerate(LAYERS):
        for name in names:
            layer_of[tuple(name.split("::"))] = k
    # module path of each file (inline modules share their file's path)
    path_of = {}
    for p, m in sorted(crate.modules.items(), key=lambda pm: len(pm[0])):
        path_of.setdefault(m.file, p)

    def entry(file):
        p = path_of.get(file, ())
        for n in range(len(p), 0, -1):
            if p[:n] in layer_of:
                return p[:n]
        return None

    for name in sorted(crate.modules[()].children):
        if not any(e[0] == name for e in layer_of):
            print(f"error: top-level module `{name}` is in no layer: add it to LAYERS in scripts/module-graph.py", file=sys.stderr)
            problems += 1
    for (a, b), (line, text) in sorted(edges.items()):
        ea, eb = entry(a), entry(b)
        if ea is None or eb is None or ea == eb:
            continue
        if layer_of[eb] >= layer_of[ea]:
            na, nb = "::".join(ea), "::".join(eb)
            print(
                f"error: layering: {rel(a)}:{line} uses `{text}` from {rel(b)}: "
                f"`{na}` (layer {layer_of[ea]}) may use only lower layers, `{nb}` is layer {layer_of[eb]}",
                file=sys.stderr,
            )
            problems += 1

    # cycles
    comps = [c for c in strongly_connected(set(crate.files), adj) if len(c) > 1]
    for comp in comps:
        print(f"error: import cycle among {len(comp)} files: {', '.join(rel(f) for f in comp)}", file=sys.stderr)
        for cycle in cycles_in(comp, adj):
            print("  cycle:", file=sys.stderr)
            for a, b in zip(cycle, cycle[1:] + cycle[:1]):
                line, text = edges[(a, b)]
                print(f"    {rel(a)}:{line} -> {rel(b)}   ({text})", file=sys.stderr)
        problems += 1

    if problems:
        print(f"module graph: {problems} problem(s)", file=sys.stderr)
        return 1
    print(f"module graph: {len(crate.files)} files, {len(edges)} edges, no cycles, layers respected")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
