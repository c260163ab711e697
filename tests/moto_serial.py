"""moto_server, one request at a time, with Scan pages that cost a page.

`moto_server` serves requests on threads and its DynamoDB backend takes no lock, so two
concurrent conditional writes can both pass their condition. DynamoDB evaluates a condition and
applies the write atomically; serving requests one at a time gives moto the same guarantee,
which the lease (one sync at a time) relies on.

Connections are still served on threads (HTTP/1.1 keep-alive): only the application call is
serialised. A single-threaded server would stall every client behind one idle connection (an
HTTP client may open a connection it then keeps idle in its pool, e.g. when two requests race
for connections), and it would pay a new TCP connection per request.

Scan: moto sorts every item of the table on each Scan call and walks from the first item to
the page's ExclusiveStartKey, so reading a table page by page costs O(N^2 log N) (a 1,000,000
record table: hours). DynamoDB starts at the key. Here the sorted items of a hash-key-only table
are kept until a write names that table, and a page starts at its key by bisection: the same
results, at a page's cost. Everything else is moto's own code.

Usage: python tests/moto_serial.py HOST PORT
"""
import bisect
import io
import json
import sys
import threading

from werkzeug.serving import run_simple
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

moto_app = DomainDispatcherApplication(create_backend_app)
one_at_a_time = threading.Lock()

# table name -> (table, items sorted as moto sorts them, their hash keys)
_sorted = {}
# (table, start key) of the Scan being served, if its page may start by bisection
_start = None
_original_all_items = Table.all_items
_original_scan = Table.scan

READS = {"GetItem", "BatchGetItem", "Query", "Scan", "DescribeTable", "ListTables",
         "DescribeTimeToLive", "ListTagsOfResource", "DescribeContinuousBackups",
         "TransactGetItems", "DescribeEndpoints", "DescribeLimits"}


def all_items(self):
    cached = _sorted.get(self.name)
    if cached is None or cached[0] is not self:
        items = _original_all_items(self)
        cached = (self, items, [i.hash_key for i in items])
        _sorted[self.name] = cached
    _, items, keys = cached
    if _start is not None and _start[0] is self:
        return items[bisect.bisect_right(keys, _start[1]):]
    return list(items)


def scan(self, filters, limit, exclusive_start_key, *args, **kwargs):
    global _start
    index_name = kwargs.get("index_name", args[1] if len(args) > 1 else None)
    segments = kwargs.get("segments", args[5] if len(args) > 5 else (None, None))
    if (exclusive_start_key and not index_name and not self.range_key_attr
            and tuple(segments) == (None, None) and self.hash_key_attr in exclusive_start_key):
        _start = (self, DynamoType(exclusive_start_key[self.hash_key_attr]))
    try:
        return _original_scan(self, filters, limit, exclusive_start_key, *args, **kwargs)
    finally:
        _start = None


Table.all_items = all_items
Table.scan = scan


def written_tables(op, body):
    """Names of the tables a DynamoDB write request names (None: unknown, forget all)."""
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return None
    names = set()
    if "TableName" in doc:
        names.add(doc["TableName"])
    names.update(doc.get("RequestItems", {}).keys())
    for item in doc.get("TransactItems", []):
        for part in item.values():
            if isinstance(part, dict) and "TableName" in part:
                names.add(part["TableName"])
    return names or None


def app(environ, start_response):
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    op = target.split(".", 1)[1] if target.startswith("DynamoDB_") else None
    if op and op not in READS:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        names = written_tables(op, body)
    with one_at_a_time:
        if op and op not in READS:
            if names is None:
                _sorted.clear()
            else:
                for name in names:
                    _sorted.pop(name, None)
        # moto builds whole responses; materialise inside the lock all the same.
        return list(moto_app(environ, start_response))


host, port = sys.argv[1], int(sys.argv[2])
run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)
