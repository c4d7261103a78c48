#!/usr/bin/env python3
"""Seeds the fuzz corpora from the project's fixture captures and rule files.

frame: each frame of each capture, prefixed with its link-type selector byte; and per
       capture, its first frames joined by the 0xA5 separator (frames containing 0xA5
       left out), so tunnels and IP fragment reassembly start from real sequences.
tls:   TCP payloads to port 443.  quic: UDP payloads to port 443 and the RFC vectors.
dns:   UDP payloads to or from port 53.  rules: the shipped rule files.
admin_files: the example config, inventory and groups, a hosts file and an adblock list.
"""
import pathlib
import struct

root = pathlib.Path(__file__).resolve().parent.parent
corpus = root / "fuzz" / "corpus"


def records(path):
    data = path.read_bytes()
    if len(data) < 24:
        return
    if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif data[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return
    link = struct.unpack(e + "I", data[20:24])[0] & 0xFFFF
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
        yield link, data[off + 16:off + 16 + incl]
        off += 16 + incl


# pcap link type -> the frame target's selector (its LINKS order).
SELECTOR = {1: 0, 113: 1, 276: 2, 101: 3, 0: 4, 108: 4, 9: 5, 50: 6, 51: 7, 104: 8}


def save(target, name, blob):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(blob)


for pcap in sorted((root / "tests" / "fixtures").glob("*.pcap")):
    sequence = []
    for i, (link, frame) in enumerate(records(pcap)):
        if i > 40 or link not in SELECTOR:
            break
        tag = f"{pcap.stem}-{i}"
        sel = bytes([SELECTOR[link]])
        save("frame", tag, sel + frame)
        if 0xA5 not in frame and len(sequence) < 12:
            sequence.append(frame)
        if link != 1 or len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        ihl = (frame[14] & 0x0F) * 4
        proto = frame[23]
        l4 = frame[14 + ihl:]
        if proto == 6 and len(l4) >= 20:
            dport = struct.unpack(">H", l4[2:4])[0]
            payload = l4[(l4[12] >> 4) * 4:]
            if dport == 443 and payload:
                save("tls", tag, payload)
        if proto == 17 and len(l4) >= 8:
            sport, dport = struct.unpack(">HH", l4[0:4])
            payload = l4[8:]
            if dport == 443:
                save("quic", tag, payload)
            if 53 in (sport, dport):
                save("dns", tag, payload)
    if len(sequence) > 1:
        save("frame", f"{pcap.stem}-sequence", sel + b"\xa5".join(sequence))

for hexfile in (root / "tests" / "fixtures" / "quic").glob("*.hex"):
    text = "".join(c for c in hexfile.read_text() if c in "0123456789abcdef")
    save("quic", hexfile.stem, bytes.fromhex(text))

for f in list((root / "rules").rglob("*.toml")) + list((root / "rules").rglob("*.list")):
    save("rules", f.name, f.read_bytes())
for f in [root / "config.example.toml", root / "devices.example.toml", root / "rules/site/groups.toml"]:
    save("admin_files", f.name, f.read_bytes())
save("admin_files", "hosts", b"127.0.0.1 localhost\n0.0.0.0 ads.example.com tracker.example\n:: ip6.example\n")
save("admin_files", "adblock", b"[Adblock Plus 2.0]\n! c\n||ai.example^\n@@||ok.example^\n||x.example^$third-party\nexample.org##.ad\n")
