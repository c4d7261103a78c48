#!/usr/bin/env python3
"""Seeds the fuzz corpora from the project's fixture captures and rule files.

frame: each frame of each capture, prefixed with its link-type selector byte; and per
       capture, its first frames joined by the 0xA5 separator (frames containing 0xA5
       left out), so tunnels and IP fragment reassembly start from real sequences.
tls:   TCP payloads to port 443.  quic: UDP payloads to port 443 and the RFC vectors.
dns:   UDP payloads to or from port 53.  rules: the shipped rule files.
admin_files: the example config, inventory and groups, a hosts file and an adblock list.
http:  request heads (origin-, absolute-, authority- and asterisk-form, bare LF, IPv6) and a
       CONNECT head followed by a ClientHello from the fixtures.
dns_query: UDP payloads to port 53 and built queries (EDNS with DO, cookie and client-subnet
       options, odd case, '_' and '-', 63-byte labels, a 253-byte name, a compression pointer).
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
                if payload[:1] == b"\x16":
                    save("http", f"connect-{tag}",
                         b"CONNECT chatgpt.com:443 HTTP/1.1\r\nHost: chatgpt.com:443\r\n\r\n" + payload)
        if proto == 17 and len(l4) >= 8:
            sport, dport = struct.unpack(">HH", l4[0:4])
            payload = l4[8:]
            if dport == 443:
                save("quic", tag, payload)
            if 53 in (sport, dport):
                save("dns", tag, payload)
            if dport == 53:
                save("dns_query", tag, payload)
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

heads = {
    "connect": b"CONNECT chatgpt.com:443 HTTP/1.1\r\nHost: chatgpt.com:443\r\nUser-Agent: curl/8.5.0\r\n"
               b"Proxy-Connection: Keep-Alive\r\n\r\n",
    "connect-noport": b"CONNECT claude.ai HTTP/1.1\r\n\r\n",
    "connect-ipv6": b"CONNECT [2001:db8::1]:8443 HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n",
    "get": b"GET /v1/models?x=1 HTTP/1.1\r\nHost: api.openai.com:8080\r\nAccept: */*\r\n\r\n",
    "absolute": b"GET http://user:pw@chatgpt.com:80/x?q#f HTTP/1.1\r\nHost: other.example\r\n\r\n",
    "asterisk": b"OPTIONS * HTTP/1.1\r\nhost: Gemini.Google.COM.\r\n\r\n",
    "http10": b"GET / HTTP/1.0\r\n\r\n",
    "bare-lf": b"POST /chat HTTP/1.1\nHost: perplexity.ai\nContent-Length: 2\n\nhi",
    "two-hosts": b"PUT / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
    "spaces": b"DELETE  /x  HTTP/1.1 \r\nHOST:\t_dns.resolver.arpa:53\t\r\n\r\n",
    "fold": b"GET / HTTP/1.1\r\nHost: a.example\r\n b\r\n\r\n",
}
for name, blob in heads.items():
    save("http", name, blob)


def dns_query(name, qtype=1, qclass=1, opt=None, flags=0x0100):
    out = struct.pack(">HHHHHH", 0x1234, flags, 1, 0, 0, 0 if opt is None else 1)
    for label in name.split(b".") if name else []:
        out += bytes([len(label)]) + label
    out += b"\x00" + struct.pack(">HH", qtype, qclass)
    if opt is not None:
        payload, do, options = opt
        out += b"\x00" + struct.pack(">HHBBHH", 41, payload, 0, 0, 0x8000 if do else 0, len(options))
        out += options
    return out


cookie = struct.pack(">HH", 10, 8) + b"\x01" * 8
ecs = struct.pack(">HHHBB", 8, 7, 1, 24, 0) + b"\x0a\x00\x00"
save("dns_query", "plain", dns_query(b"chatgpt.com"))
save("dns_query", "edns-do", dns_query(b"Claude.AI", 28, opt=(1232, True, b"")))
save("dns_query", "edns-cookie", dns_query(b"www.example.org", 65, opt=(4096, False, cookie)))
save("dns_query", "edns-ecs", dns_query(b"api.openai.com", 1, opt=(512, False, ecs)))
save("dns_query", "underscore", dns_query(b"_dns.resolver.arpa", 64))
save("dns_query", "label63", dns_query(b"a" * 63 + b".x-y.com"))
save("dns_query", "name253", dns_query(b".".join([b"b" * 63] * 3 + [b"c" * 61])))
save("dns_query", "pointer", dns_query(b"x")[:12] + b"\xc0\x0c\x00\x01\x00\x01")
save("dns_query", "any", dns_query(b"example.org", 255))
