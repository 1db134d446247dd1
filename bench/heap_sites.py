#!/usr/bin/env python3
"""heap_sites.py BINARY BASE.heap HELD.heap N [--stacks]: live bytes per allocation site
between two jemalloc heap profiles (HELD minus BASE, unbiased for sampling like jeprof),
in KiB per stream for N streams. A site is the first frame, from the allocation up, that
is not the allocator, alloc/core/std, bytes or a container's growth. --stacks prints the
call chains behind each site (DEPTH=6 frames). Used by scripts/stream-memory.sh."""
import math, re, subprocess, sys, collections
binary, base_f, held_f, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
show = '--stacks' in sys.argv

def parse(path):
    period = 1
    stacks = []  # (addrs, count, bytes)
    maps = []
    with open(path) as f:
        lines = f.read().split('\n')
    m = re.match(r'heap_v2/(\d+)', lines[0]); period = int(m.group(1))
    i = 1; cur = None; in_maps = False
    for ln in lines[1:]:
        if ln.startswith('MAPPED_LIBRARIES'):
            in_maps = True; continue
        if in_maps:
            p = ln.split()
            if len(p) >= 6 and binary in p[5]:
                lo, hi = [int(x, 16) for x in p[0].split('-')]
                maps.append((lo, hi, int(p[2], 16)))
            continue
        if ln.startswith('@'):
            cur = [int(x, 16) for x in ln[1:].split()]
        elif ln.strip().startswith('t*:') and cur is not None:
            m = re.match(r'\s*t\*: (\d+): (\d+)', ln)
            c, b = int(m.group(1)), int(m.group(2))
            stacks.append((tuple(cur), c, b)); cur = None
    return period, stacks, maps

def unbias(period, c, b):
    if c == 0: return 0.0
    avg = b / c
    ratio = 1.0 / (1.0 - math.exp(-avg / period))
    return b * ratio

pb, sb, _ = parse(base_f)
ph, sh, maps = parse(held_f)
tot = collections.Counter()
for st, c, b in sh: tot[st] += unbias(ph, c, b)
for st, c, b in sb: tot[st] -= unbias(pb, c, b)
# symbolize
addrs = sorted({a for st in tot for a in st})
def to_file_off(a):
    for lo, hi, off in maps:
        if lo <= a < hi: return a - lo + off
    return None
# file offset -> vaddr: for PIE, vaddr == file offset for rust binaries typically (check with readelf)
seg = subprocess.run(['readelf', '-lW', binary], capture_output=True, text=True).stdout
loads = []
for l in seg.split('\n'):
    p = l.split()
    if p and p[0] == 'LOAD':
        loads.append((int(p[1], 16), int(p[2], 16), int(p[4], 16)))  # off, vaddr, filesz
def to_vaddr(off):
    for o, v, s in loads:
        if o <= off < o + s: return off - o + v
    return off
q = []
for a in addrs:
    fo = to_file_off(a - 1)
    q.append(hex(to_vaddr(fo)) if fo is not None else '0x0')
# One addr2line run; each address is followed by a sentinel (0x0) that ends its inlined frames.
sym = {}
inp = []
for qa in q: inp += [qa, '0x0']
r = subprocess.run(['addr2line', '-f', '-C', '-i', '-e', binary], input='\n'.join(inp), capture_output=True, text=True).stdout.split('\n')
cur = []
i = 0; results = []
while i + 1 < len(r):
    f, loc = r[i], r[i+1]; i += 2
    if f == '??' and loc.startswith('??:0'):
        results.append(cur); cur = []
    else:
        cur.append((f, loc))
for a, fr in zip(addrs, results): sym[a] = fr
SKIP = re.compile(r'^(_rjem|je_|prof_|alloc::|<alloc::|core::|<core::|bytes::|<bytes::|tikv_jemalloc|std::|<std::|__rust|rust_|tokio::io::util::buf|<tokio::io::util::buf|hashbrown|<hashbrown|http::header::map|<http::header::map|__rdl|malloc|calloc|realloc|imalloc|<T as |smallvec|<smallvec)')
site = collections.Counter(); examples = {}
for st, b in tot.items():
    if abs(b) < 1: continue
    frames = []
    for a in st:
        for f, loc in sym.get(a, []): frames.append((f, loc))
    s = None
    for f, loc in frames:
        if not SKIP.match(f):
            s = f"{f}  [{loc.split('/')[-1]}]"; break
    s = s or (frames[0][0] if frames else '?')
    s = re.sub(r'::h[0-9a-f]{16}', '', s)
    site[s] += b
    examples.setdefault(s, collections.Counter())
    key = tuple(re.sub(r'::h[0-9a-f]{16}','',f)[:150] for f, loc in frames if not SKIP.match(f))[:int(__import__('os').environ.get('DEPTH','6'))]
    examples[s][key] += b
total = sum(site.values())
print(f"total {total/1024/n:.2f} KiB/stream  ({total/1048576:.1f} MiB over {n} streams)")
for s, b in site.most_common():
    if abs(b)/1024/n < 0.05: continue
    print(f"{b/1024/n:8.2f} KiB  {s}")
    if show:
        for key, kb in examples[s].most_common(4):
            print(f'        {kb/1024/n:6.2f} KiB via:')
            for f in key: print('              ', f)
