"""agent's build egress policy: the two halves that give RUN steps one way out.

gate  -- runs in the holder: a container on no network whose network namespace the
         build's steps join. It makes every IPv4 address local to that namespace (so a
         connection to anywhere lands here instead of failing unseen), serves an HTTP
         proxy on 127.0.0.1, answers DNS queries (refusing them), and watches loopback
         for connections that ignore the proxy. Allowed requests go to the relay over a
         Unix socket in a volume both share; everything else is refused and reported.
relay -- runs on an ordinary network: connects to an allowed host for the gate, after
         resolving it itself, never to a loopback, private or link-local address
         unless the allow-list names that host exactly.

Each refusal is one JSON line on the gate's stdout: {"refused": {...}}.
Standard library only, so any image with python3 can carry it.
"""

import ipaddress
import json
import os
import select
import socket
import struct
import sys
import threading

PROXY_PORT = 3128
BUFFER = 65536
HEAD_TIMEOUT = 60


def say(record):
    sys.stdout.write(json.dumps(record, sort_keys=True) + "\n")
    sys.stdout.flush()


def refused(host, port, via, reason):
    say({"refused": {"host": host, "port": port, "via": via, "reason": reason}})


# ---- the allow-list -------------------------------------------------------------

class Allow:
    """Entries: {"host": "pypi.org" | "*.example.com" | "10.0.0.5", "port": int|None,
    "exact": bool}. `exact`: the user named this host (or address) itself, so it may
    be a private address."""

    def __init__(self, entries):
        self.entries = entries

    def match(self, host, port):
        host = host.lower().rstrip(".")
        for entry in self.entries:
            if entry.get("port") not in (None, port):
                continue
            pattern = entry["host"].lower()
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]) and host != pattern[2:]:
                    return entry
            elif host == pattern:
                return entry
        return None


def pipe(a, b):
    sockets = [a, b]
    try:
        while True:
            readable, _, _ = select.select(sockets, [], [], 300)
            if not readable:
                return
            for source in readable:
                data = source.recv(BUFFER)
                if not data:
                    return
                (b if source is a else a).sendall(data)
    except OSError:
        return
    finally:
        for sock in sockets:
            try:
                sock.close()
            except OSError:
                pass


# ---- the gate ---------------------------------------------------------------------

def make_every_address_local():
    """`ip route add local 0.0.0.0/0 dev lo table local`, by netlink: a connection to
    any IPv4 address reaches this namespace's loopback, where it is seen and refused,
    instead of failing with no packet sent."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    sock.bind((0, 0))
    # rtmsg: family, dst_len, src_len, tos, table=local, protocol=static,
    # scope=host, type=local, flags
    message = struct.pack("BBBBBBBBI", socket.AF_INET, 0, 0, 0, 255, 4, 254, 2, 0)
    message += struct.pack("HHI", 8, 4, socket.if_nametoindex("lo"))  # RTA_OIF
    header = struct.pack("IHHII", 16 + len(message), 24, 0x1 | 0x4 | 0x200 | 0x400, 1, 0)
    sock.send(header + message)
    reply = sock.recv(4096)
    error = struct.unpack("i", reply[16:20])[0]
    if error not in (0, -17):  # -17: already there
        raise OSError(-error, "adding the local route: " + os.strerror(-error))


class Gate:
    def __init__(self, allow, relay_socket):
        self.allow = allow
        self.relay_socket = relay_socket

    def open_relay(self, host, port):
        """A connection to host:port through the relay, or the relay's reason."""
        relay = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            relay.connect(self.relay_socket)
            relay.sendall((json.dumps({"host": host, "port": port}) + "\n").encode())
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = relay.recv(1)
                if not chunk:
                    break
                answer += chunk
        except OSError as error:
            relay.close()
            return None, "the relay is unavailable: %s" % error
        answer = answer.decode(errors="replace").strip()
        if answer != "ok":
            relay.close()
            return None, answer or "the relay closed the connection"
        return relay, None

    # -- the proxy --

    def serve_proxy(self, server):
        while True:
            client, _ = server.accept()
            threading.Thread(target=self.proxy_one, args=(client,), daemon=True).start()

    def proxy_one(self, client):
        try:
            # A client that never finishes its request gives up its connection.
            client.settimeout(HEAD_TIMEOUT)
            head = read_head(client)
            if head is None:
                client.close()
                return
            request_line, rest = head
            method, target, version = parse_request_line(request_line)
            if method == "CONNECT":
                host, port = split_host_port(target, 443)
            else:
                host, port, target = split_absolute(target)
            if host is None:
                answer(client, 400, "agent's build proxy takes CONNECT and absolute URLs only\n")
                return
            if self.allow.match(host, port) is None:
                refused(host, port, "proxy", "not on the build's allow-list")
                answer(client, 403, "%s:%d is not on this build's allow-list (agent build egress)\n" % (host, port))
                return
            client.settimeout(None)
            upstream, reason = self.open_relay(host, port)
            if upstream is None:
                refused(host, port, "proxy", reason)
                answer(client, 403, "%s:%d refused: %s (agent build egress)\n" % (host, port, reason))
                return
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
            else:
                upstream.sendall(origin_request(method, target, version, request_line, rest))
            pipe(client, upstream)
        except Exception:  # a misbehaving client ends its own connection only
            try:
                client.close()
            except OSError:
                pass

    # -- DNS: every query refused, the names not on the list reported --

    def serve_dns(self, server):
        while True:
            query, peer = server.recvfrom(4096)
            try:
                name = query_name(query)
            except Exception:
                continue
            if name and self.allow.match(name, 443) is None and self.allow.match(name, 80) is None:
                refused(name, 53, "dns", "name lookups are not answered in a build; use the proxy")
            # REFUSED, echoing the question.
            flags = struct.unpack("!H", query[2:4])[0]
            reply = query[:2] + struct.pack("!H", 0x8000 | (flags & 0x0100) | 0x0080 | 5) + query[4:6] + b"\0\0\0\0\0\0"
            reply += query[12:]
            try:
                server.sendto(reply, peer)
            except OSError:
                pass

    # -- connections that ignore the proxy, seen on loopback --

    def watch(self, sniffer):
        while True:
            frame, (_, _, kind, _, _) = sniffer.recvfrom(BUFFER)
            # Loopback shows each packet twice, going out and coming in.
            if kind != socket.PACKET_OUTGOING:
                continue
            seen = tcp_syn(frame[14:])
            if seen is None:
                continue
            address, port = seen
            if address == "127.0.0.1" and port == PROXY_PORT:
                continue
            refused(address, port, "direct", "a connection that does not go through the proxy")


def tcp_syn(packet):
    """(destination, port) of a TCP SYN (without ACK) in an IPv4 packet."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != 6:
        return None
    header = (packet[0] & 0x0F) * 4
    tcp = packet[header:header + 20]
    if len(tcp) < 14:
        return None
    flags = tcp[13]
    if not flags & 0x02 or flags & 0x10:
        return None
    return socket.inet_ntoa(packet[16:20]), struct.unpack("!H", tcp[2:4])[0]


def query_name(query):
    labels, offset = [], 12
    while True:
        length = query[offset]
        if length == 0:
            break
        labels.append(query[offset + 1:offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    return ".".join(labels).lower()


def read_head(client):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(BUFFER)
        if not chunk:
            return None
        data += chunk
        if len(data) > 64 * 1024:
            return None
    end = data.index(b"\r\n\r\n") + 4
    return data[:end], data[end:]


def parse_request_line(head):
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split()
    if len(parts) != 3:
        return "", "", ""
    return parts[0].upper(), parts[1], parts[2]


def split_host_port(text, default_port):
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    try:
        return host.lower(), int(port) if port else default_port
    except ValueError:
        return None, None


def split_absolute(target):
    """host, port and the origin-form path of an absolute http:// URL."""
    if not target.lower().startswith("http://"):
        return None, None, None
    rest = target[7:]
    authority, slash, path = rest.partition("/")
    authority = authority.rpartition("@")[2]
    host, port = split_host_port(authority, 80)
    return host, port, slash + path if slash else "/"


def origin_request(method, path, version, head, rest):
    """The request as an origin server takes it: origin-form, and one request per
    connection (a kept-alive connection could name another host next)."""
    lines = head.split(b"\r\n")[1:]
    kept = [line for line in lines if line and not line.lower().startswith((b"proxy-connection:", b"connection:", b"keep-alive:"))]
    out = ("%s %s %s\r\n" % (method, path, version)).encode("latin-1")
    out += b"\r\n".join(kept) + b"\r\nConnection: close\r\n\r\n"
    return out + rest


def answer(client, status, text):
    reason = {400: "Bad Request", 403: "Forbidden"}[status]
    body = text.encode()
    client.sendall(("HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (status, reason, len(body))).encode() + body)
    client.close()


# ---- the relay --------------------------------------------------------------------

def public(address):
    ip = ipaddress.ip_address(address)
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified)


class Relay:
    def __init__(self, allow, path):
        self.allow = allow
        self.path = path

    def serve(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(self.path)
        os.chmod(self.path, 0o666)
        server.listen(128)
        say({"ready": "relay"})
        while True:
            client, _ = server.accept()
            threading.Thread(target=self.relay_one, args=(client,), daemon=True).start()

    def relay_one(self, client):
        try:
            line = b""
            while not line.endswith(b"\n") and len(line) < 4096:
                chunk = client.recv(1)
                if not chunk:
                    client.close()
                    return
                line += chunk
            wanted = json.loads(line)
            host, port = str(wanted["host"]), int(wanted["port"])
            upstream, reason = self.connect(host, port)
            if upstream is None:
                client.sendall((reason + "\n").encode())
                client.close()
                return
            client.sendall(b"ok\n")
            pipe(client, upstream)
        except Exception as error:
            try:
                client.sendall(("relay error: %s\n" % error).encode())
                client.close()
            except OSError:
                pass

    def connect(self, host, port):
        entry = self.allow.match(host, port)
        if entry is None:
            return None, "not on the build's allow-list"
        try:
            addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            return None, "%s does not resolve: %s" % (host, error)
        last = "no address"
        for family, kind, proto, _, address in addresses:
            if not entry.get("exact") and not public(address[0]):
                last = "%s resolves to %s, which only an exact entry may reach" % (host, address[0])
                continue
            sock = socket.socket(family, kind, proto)
            sock.settimeout(30)
            try:
                sock.connect(address)
                sock.settimeout(None)
                return sock, None
            except OSError as error:
                sock.close()
                last = "%s:%d: %s" % (address[0], port, error)
        return None, last


def main():
    role, config = sys.argv[1], json.loads(sys.argv[2])
    allow = Allow(config["allow"])
    if role == "relay":
        Relay(allow, config["socket"]).serve()
        return
    make_every_address_local()
    proxy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    proxy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    proxy.bind(("127.0.0.1", PROXY_PORT))
    proxy.listen(128)
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("0.0.0.0", 53))
    sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    # A burst of connections must not overflow the watch: SO_RCVBUFFORCE (NET_ADMIN).
    sniffer.setsockopt(socket.SOL_SOCKET, 33, 16 * 1024 * 1024)
    sniffer.bind(("lo", 0))
    gate = Gate(allow, config["socket"])
    threading.Thread(target=gate.serve_dns, args=(dns,), daemon=True).start()
    threading.Thread(target=gate.watch, args=(sniffer,), daemon=True).start()
    say({"ready": "gate"})
    gate.serve_proxy(proxy)


if __name__ == "__main__":
    main()
