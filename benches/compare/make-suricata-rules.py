#!/usr/bin/env python3
"""Writes Suricata rules equivalent to aiwarden's catalog: for every host pattern, one
tls.sni, one dns.query and one quic.sni rule that match the name and its subdomains on
label boundaries (dotprefix + endswith), case-insensitively; an `=host` pattern matches
the whole buffer (startswith + endswith) and a `pre*suf.name` label wildcard a PCRE.

usage: make-suricata-rules.py RULES_DIR > aiwarden.rules
"""
import pathlib
import re
import sys
import tomllib

rules_dir = pathlib.Path(sys.argv[1])
patterns = set()
for f in sorted((rules_dir / "catalog").glob("*.toml")):
    doc = tomllib.loads(f.read_text())
    for svc in doc.get("service", []):
        for group in svc.get("hosts", []):
            for p in group.get("patterns", []):
                patterns.add(p.lower().rstrip(".").removeprefix("*."))
deny = rules_dir / "site" / "deny.list"
if deny.exists():
    for line in deny.read_text().splitlines():
        line = line.split("#", 1)[0].split()
        if line:
            patterns.add(line[0].lower().rstrip(".").removeprefix("*."))

def body(p):
    """The rule's matching part for one aiwarden pattern."""
    if p.startswith("="):
        return f'content:"{p[1:]}"; nocase; startswith; endswith;'
    first, _, rest = p.partition(".")
    if "*" in first:
        pre, _, suf = first.partition("*")
        pcre = rf"(?:^|\.){re.escape(pre)}[^.]+{re.escape(suf)}\.{re.escape(rest)}$"
        return f'content:".{rest}"; nocase; endswith; pcre:"/{pcre}/i";'
    return f'dotprefix; content:".{p}"; nocase; endswith;'


sid = 9_100_000
for p in sorted(patterns):
    for proto, buf in (("tls", "tls.sni"), ("dns", "dns.query"), ("quic", "quic.sni")):
        sid += 1
        print(
            f'alert {proto} any any -> any any (msg:"aiwarden {proto} {p}"; {buf}; '
            f"{body(p)} sid:{sid}; rev:1;)"
        )
