"""Runs a command whose stderr is a non-blocking pipe that is read in bursts: up
to the line that says "listening on", then not at all until SIGUSR1 (the pipe
fills and the command's write(2) gets EAGAIN), then to the end. What it reads
goes to this process's stderr unchanged; SIGTERM is passed on. Every wait is
bounded (60 s)."""
import fcntl, os, signal, subprocess, sys, time

r, w = os.pipe()
fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)
child = subprocess.Popen(sys.argv[1:], stderr=w)
os.close(w)
go = False


def on_usr1(*_):
    global go
    go = True


signal.signal(signal.SIGUSR1, on_usr1)
signal.signal(signal.SIGTERM, lambda *_: child.terminate())
seen = b""
while b"listening on" not in seen:
    chunk = os.read(r, 65536)
    if not chunk:
        break
    seen += chunk
    os.write(2, chunk)
deadline = time.monotonic() + 60
while not go and child.poll() is None and time.monotonic() < deadline:
    time.sleep(0.01)
while True:
    try:
        chunk = os.read(r, 65536)
    except InterruptedError:
        continue
    if not chunk:
        break
    os.write(2, chunk)
sys.exit(child.wait(timeout=60))
