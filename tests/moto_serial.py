"""moto_server, one request at a time.

`moto_server` serves requests on threads and its DynamoDB backend takes no lock, so two
concurrent conditional writes can both pass their condition. DynamoDB evaluates a condition and
applies the write atomically; serving requests one at a time gives moto the same guarantee,
which the lease (one sync at a time) relies on.
Usage: python tests/moto_serial.py HOST PORT
"""
import sys

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

host, port = sys.argv[1], int(sys.argv[2])
app = DomainDispatcherApplication(create_backend_app)
run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)
