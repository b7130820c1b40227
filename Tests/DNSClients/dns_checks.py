"""The registry's DNS answers read with dnspython, a real resolver library: every record kind,
tags, rotation, NXDOMAIN against an empty answer, truncation and TCP, a name outside the
domain, and malformed packets (random bytes, truncated headers, compression loops) that must
be answered or dropped without harm. Run by Tests/ServerTests/LiveDNSTests.swift:

    python dns_checks.py DNS_PORT

The registry holds (registered by the test): web with 10.0.0.1:8080 (tag v1, zone eu-1),
10.0.0.2:8080 (weight 5), [fd00::3]:443 (tag V1), web4.example:9000, and a DOWN 10.0.0.9;
idle with only an OUT_OF_SERVICE instance; big with 100 instances 10.1.0.1-100.
"""

import random
import socket
import sys

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

port = int(sys.argv[1])
server = "127.0.0.1"


def ask(name, kind, tcp=False, **options):
    query = dns.message.make_query(name, kind, **options)
    if tcp:
        return dns.query.tcp(query, server, port=port, timeout=3)
    return dns.query.udp(query, server, port=port, timeout=3)


def step(text):
    print("ok:", text, flush=True)


def addresses(response):
    return [item.address for rrset in response.answer for item in rrset]


# A and AAAA: the UP instances with IP hosts, rotated from one query to the next.
first = ask("web.service.registry.", "A")
assert first.rcode() == dns.rcode.NOERROR and first.flags & dns.flags.AA, first
assert sorted(addresses(first)) == ["10.0.0.1", "10.0.0.2"], first
second = ask("web.service.registry.", "A")
assert sorted(addresses(second)) == sorted(addresses(first)) and addresses(second) != addresses(first), (first, second)
assert not first.flags & dns.flags.RA, "recursion is not offered"
step(f"A rotates: {addresses(first)} then {addresses(second)}")
assert addresses(ask("WEB.Service.REGISTRY.", "AAAA")) == ["fd00::3"]
assert sorted(addresses(ask("v1.web.service.registry.", "A"))) == ["10.0.0.1"]
assert addresses(ask("v1.web.service.registry.", "AAAA")) == ["fd00::3"], "tags match without case"
assert addresses(ask("web.service.eu-1.registry.", "A")) == ["10.0.0.1"], "zones"
assert sorted(addresses(ask("web.service.consul.", "A"))) == ["10.0.0.1", "10.0.0.2"], "Consul's domain"
assert sorted(addresses(ask("web.service.dc1.consul.", "A"))) == ["10.0.0.1", "10.0.0.2"], "Consul's datacenter label"
step("AAAA, tags, zones and consul. names")

# SRV: port, weight, targets, and their addresses in the additional section.
srv = ask("_web._tcp.service.registry.", "SRV")
records = sorted((item.port, item.weight, item.target.to_text()) for rrset in srv.answer for item in rrset)
assert records == [(443, 100, "fd000000000000000000000000000003.addr.registry."), (8080, 5, "0a000002.addr.registry."),
                   (8080, 100, "0a000001.addr.registry."), (9000, 100, "web4.example.")], records
glue = {rrset.name.to_text(): [item.address for item in rrset] for rrset in srv.additional}
assert glue["0a000001.addr.registry."] == ["10.0.0.1"] and glue["fd000000000000000000000000000003.addr.registry."] == ["fd00::3"], glue
assert addresses(ask("0a000002.addr.registry.", "A")) == ["10.0.0.2"]
assert len(ask("_web._v1.service.registry.", "SRV").answer[0]) == 2, "RFC 2782 names with a tag"
assert len(ask("web.service.registry.", "SRV").answer[0]) == 4
step("SRV with ports, weights and glue")

# Negative answers: NXDOMAIN for an unknown service, NOERROR and no data for a known one
# with nothing UP; both with the SOA for negative caching. Outside the domain: REFUSED.
unknown = ask("nothing.service.registry.", "A")
assert unknown.rcode() == dns.rcode.NXDOMAIN and unknown.authority[0].rdtype == dns.rdatatype.SOA, unknown
idle = ask("idle.service.registry.", "A")
assert idle.rcode() == dns.rcode.NOERROR and not idle.answer and idle.authority[0].rdtype == dns.rdatatype.SOA, idle
assert ask("web.service.registry.", "TXT").rcode() == dns.rcode.NOERROR
outside = ask("example.com.", "A")
assert outside.rcode() == dns.rcode.REFUSED and not outside.answer, outside
assert ask("registry.", "SOA").answer[0].rdtype == dns.rdatatype.SOA
step("NXDOMAIN, NOERROR without data, REFUSED outside the domain")

# Truncation: 100 addresses do not fit in 512 bytes; the UDP answer says so and is well
# formed; EDNS0 raises the size; TCP has them all.
small = ask("big.service.registry.", "A", use_edns=False)
assert small.flags & dns.flags.TC and 0 < len(small.answer[0]) < 100, small.flags
edns = ask("big.service.registry.", "A", use_edns=0, payload=1232)
assert edns.edns == 0 and edns.payload == 1232
tcp = ask("big.service.registry.", "A", tcp=True)
assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 100
step(f"truncation: {len(small.answer[0])} of 100 over UDP with TC, 100 over TCP")

# Malformed packets: each dropped or answered with FORMERR, and the server still answers after.
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.settimeout(0.1)
generator = random.Random(16)
header = bytes([0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0])
bad = [b"", b"\x00", header[:5], header, header + b"\xc0\x0c\x00\x01\x00\x01", header + b"\xc0\x40\x00\x01\x00\x01",
       header + b"\x3f" + b"a" * 10, header + b"\x40\x00\x00\x01\x00\x01"]
bad += [bytes(generator.getrandbits(8) for _ in range(generator.randrange(1, 600))) for _ in range(300)]
answered = 0
for packet in bad:
    udp.sendto(packet, (server, port))
    try:
        data, _ = udp.recvfrom(65535)
        answered += 1
        reply = dns.message.from_wire(data, question_only=True)
        assert reply.flags & dns.flags.QR
    except socket.timeout:
        pass
    except dns.exception.DNSException as problem:
        raise AssertionError(f"an answer to a malformed packet did not parse: {problem}")
udp.close()
after = ask("web.service.registry.", "A")
assert sorted(addresses(after)) == ["10.0.0.1", "10.0.0.2"], f"the server stopped answering: {after}"
# Over TCP too: a length prefix and a compression loop, then a good query on a new connection.
with socket.create_connection((server, port), timeout=3) as connection:
    loop = header + b"\xc0\x0c\x00\x01\x00\x01"
    connection.sendall(len(loop).to_bytes(2, "big") + loop)
    length = int.from_bytes(connection.recv(2), "big")
    reply = dns.message.from_wire(connection.recv(length), question_only=True)
    assert reply.rcode() == dns.rcode.FORMERR, reply
assert len(ask("big.service.registry.", "A", tcp=True).answer[0]) == 100
step(f"{len(bad)} malformed packets: {answered} answered (FORMERR or the like), the rest dropped; still serving")
print("done")
