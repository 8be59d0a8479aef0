#!/usr/bin/python3
"""An SSH server that ignores the client's receive window (issue 13).

Run with Debian's /usr/bin/python3 and python3-paramiko:
    flood_server.py PORT
It prints its host key's OpenSSH public line on stdout, then serves one
connection: any client key is accepted, and the command of the first `exec`
request is answered with 64 MiB of data sent without waiting for window
space, which RFC 4254 5.2 forbids. A well-behaved client must refuse it
and end the connection; a naive one buffers whatever arrives.
"""

import socket
import sys
import threading

import paramiko

FLOOD = 64 << 20
CHUNK = 32 << 10


class Server(paramiko.ServerInterface):
    def __init__(self):
        self.exec_started = threading.Event()

    def check_auth_publickey(self, username, key):
        return paramiko.AUTH_SUCCESSFUL

    def get_allowed_auths(self, username):
        return "publickey"

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        self.exec_started.set()
        return True


def main():
    port = int(sys.argv[1])
    key = paramiko.RSAKey.generate(2048)
    print("%s %s" % (key.get_name(), key.get_base64()), flush=True)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1)
    print("listening", flush=True)
    conn, _ = listener.accept()
    transport = paramiko.Transport(conn)
    transport.add_server_key(key)
    server = Server()
    transport.start_server(server=server)
    chan = transport.accept(30)
    if chan is None:
        return
    server.exec_started.wait(30)
    # Pretend the client granted an endless window.
    chan.out_window_size = 1 << 40
    sent = 0
    block = b"x" * CHUNK
    try:
        while sent < FLOOD and transport.is_active():
            chan.sendall(block)
            sent += CHUNK
        chan.send_exit_status(0)
    except Exception:
        pass
    transport.close()


if __name__ == "__main__":
    main()
