"""moto_server, one request at a time.

`moto_server` serves requests on threads and its DynamoDB backend takes no lock, so two
concurrent conditional writes can both pass their condition. DynamoDB evaluates a condition and
applies the write atomically; serving requests one at a time gives moto the same guarantee,
which the lease (one sync at a time) relies on.

Connections are still served on threads (HTTP/1.1 keep-alive): only the application call is
serialised. A single-threaded server would stall every client behind one idle connection (an
HTTP client may open a connection it then keeps idle in its pool, e.g. when two requests race
for connections), and it would pay a new TCP connection per request.
Usage: python tests/moto_serial.py HOST PORT
"""
import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

moto_app = DomainDispatcherApplication(create_backend_app)
one_at_a_time = threading.Lock()


def app(environ, start_response):
    with one_at_a_time:
        # moto builds whole responses; materialise inside the lock all the same.
        return list(moto_app(environ, start_response))


host, port = sys.argv[1], int(sys.argv[2])
run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)
