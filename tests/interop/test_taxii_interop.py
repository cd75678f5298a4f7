"""Interoperability of `phalanx serve` with the OASIS TAXII 2.1 client (taxii2-client).

Starts a real `phalanx serve` on a free loopback port (collections, tokens and users made
with the CLI beforehand) and drives it with taxii2-client 2.3.0, and with plain requests
where the client cannot express a request (bad headers, oversized bodies, raw headers).
Everything the server returns is checked against TAXII 2.1 (OASIS Standard, 10 June 2021)
and ../shared/design/STANDARDS.md section 1; the STIX it emits against stix2-validator.

Run by scripts/test with PHALANX_BIN pointing at the built binary.
"""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import time
import urllib.parse
import uuid
from dataclasses import dataclass

import pytest
import requests
import requests.auth
from requests.exceptions import HTTPError
from stix2validator import ValidationOptions, validate_file
from taxii2client.exceptions import AccessError
from taxii2client.v21 import ApiRoot, Collection, Server, Status, as_pages

PHALANX = os.environ["PHALANX_BIN"]
ROOT = pathlib.Path(__file__).resolve().parents[2]
ICS = ROOT.parent / "shared" / "data" / "stix" / "ics-attack.json"

TAXII = "application/taxii+json;version=2.1"
MAX_CONTENT_LENGTH = 300_000  # the API root's max_content_length (serve --max-content-length)
PAGED = 3000  # indicators posted to the `intel` collection for the paging tests
ENVELOPE = 200  # objects per POST when filling `intel` (~90 kB, under the limit)
PASSWORD = "correct horse battery staple 42"
TS0 = "2024-01-01T00:00:00.000Z"
MICROS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")


# ---------------------------------------------------------------------------- helpers


def phalanx(data, *args, input=None, check=True):
    res = subprocess.run(
        [PHALANX, "--data", str(data), *args],
        capture_output=True,
        text=True,
        input=input,
    )
    if check and res.returncode != 0:
        raise AssertionError(
            f"phalanx {' '.join(args)} exited {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
        )
    return res


class Bearer(requests.auth.AuthBase):
    """`Authorization: Bearer TOKEN`, for requests and taxii2-client (auth=...)."""

    def __init__(self, token):
        self.token = token

    def __call__(self, r):
        r.headers["Authorization"] = "Bearer " + self.token
        return r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data, log_path, *extra):
    """Start `phalanx serve` and wait until /healthz answers 200 (no credentials)."""
    port = free_port()
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [PHALANX, "--data", str(data), "serve", "--listen", f"127.0.0.1:{port}", *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise AssertionError(
                f"phalanx serve exited with {proc.returncode}:\n{pathlib.Path(log_path).read_text(errors='replace')}"
            )
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc, base
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"/healthz not 200 after 20 s:\n{pathlib.Path(log_path).read_text(errors='replace')}"
            )
        time.sleep(0.1)


def stop_server(proc, sig=signal.SIGINT, timeout=20):
    """Ask the server to stop (Ctrl-C by default); returns its exit code (None if killed)."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def indicator(ip="198.51.100.7", created=TS0, modified=None, **extra):
    obj = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid4()}",
        "created": created,
        "modified": modified or created,
        "name": "Interop test indicator",
        "pattern": f"[ipv4-addr:value = '{ip}']",
        "pattern_type": "stix",
        "valid_from": created,
    }
    obj.update(extra)
    return obj


def ts(value):
    """A TAXII/STIX timestamp as a comparable key, whatever its fraction digits."""
    m = TIMESTAMP.match(value)
    assert m, f"not an RFC 3339 UTC timestamp: {value!r}"
    return m.group(1), (m.group(2) or "").ljust(9, "0")


def assert_error(resp, status):
    """A TAXII error resource: JSON with a title and http_status as a string."""
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError(f"{status} without a JSON (TAXII error) body: {resp.text[:300]!r}")
    assert isinstance(body.get("title"), str) and body["title"], body
    assert body.get("http_status") == str(status), body
    return body


def assert_taxii_content_type(resp):
    ct = resp.headers.get("Content-Type", "").replace(" ", "")
    assert ct.startswith("application/taxii+json"), ct
    assert "version=2.1" in ct.split(";"), ct


def no_empty_lists(value, where="$"):
    """TAXII 2.1 section 2: empty lists are forbidden; the key is omitted instead."""
    if isinstance(value, list):
        assert value, f"empty list at {where}"
        for i, v in enumerate(value):
            no_empty_lists(v, f"{where}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            no_empty_lists(v, f"{where}.{k}")


@dataclass
class Node:
    base: str
    data: pathlib.Path
    log: pathlib.Path
    cols: dict  # alias -> collection record from `collection list --json`
    writer: str  # bearer token: --write on every collection
    reader: str  # bearer token: --read intel only
    proc: subprocess.Popen

    @property
    def api_root(self):
        return f"{self.base}/default/"

    def col_url(self, alias):
        return f"{self.api_root}collections/{self.cols[alias]['id']}/"

    def collection(self, alias, token=None, **kw):
        if not kw:
            kw = {"auth": Bearer(token or self.writer)}
        return Collection(self.col_url(alias), **kw)

    def get(self, url, token=None, accept=TAXII, **kw):
        headers = {"Accept": accept} if accept else {}
        headers.update(kw.pop("headers", {}))
        auth = kw.pop("auth", Bearer(token or self.writer))
        return requests.get(url, headers=headers, auth=auth, timeout=30, **kw)

    def post(self, url, body, token=None, content_type=TAXII, **kw):
        headers = {"Accept": TAXII, "Content-Type": content_type}
        auth = kw.pop("auth", Bearer(token or self.writer))
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        return requests.post(url, data=body, headers=headers, auth=auth, timeout=60, **kw)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("taxii")
    data = tmp / "data"
    for alias in ("intel", "work", "secret", "ics"):
        phalanx(data, "collection", "create", alias)
    phalanx(data, "collection", "create", "ro", "--read-only")
    phalanx(data, "import", "--collection", "ics", str(ICS), "--quiet")
    cols = {c["alias"]: c for c in json.loads(phalanx(data, "--json", "collection", "list").stdout)}
    for alias in ("intel", "work", "secret", "ics", "ro"):
        assert alias in cols, cols
        assert uuid.UUID(cols[alias]["id"]).version == 4, cols[alias]
    writer = phalanx(data, "token", "create", "--org", "local", "--write").stdout
    reader = phalanx(data, "token", "create", "--org", "local", "--read", "intel").stdout
    for token in (writer, reader):
        # the token alone on stdout
        assert re.fullmatch(r"\S+\n?", token), repr(token)
    phalanx(data, "user", "add", "alice", "--org", "local", "--password-stdin", "--write", input=PASSWORD)

    proc, base = start_server(data, tmp / "serve.log", "--max-content-length", str(MAX_CONTENT_LENGTH))
    node = Node(base, data, tmp / "serve.log", cols, writer.strip(), reader.strip(), proc)
    yield node
    stop_server(proc)


@pytest.fixture(scope="module")
def paged(node):
    """PAGED indicators posted to `intel` in envelopes of ENVELOPE: id -> envelope index."""
    col = node.collection("intel")
    batches = {}
    for b in range(PAGED // ENVELOPE):
        objs = [indicator(ip=f"10.0.{b}.{i}") for i in range(ENVELOPE)]
        status = col.add_objects({"objects": objs}, poll_interval=0.2, timeout=60)
        assert status.status == "complete" and status.success_count == ENVELOPE, status._raw
        batches.update({o["id"]: b for o in objs})
    assert len(batches) == PAGED
    return batches


def all_pages(func, per_request, **filters):
    """as_pages with a guard against a server that never ends (more without next, ...)."""
    pages = []
    for env in as_pages(func, per_request, **filters):
        pages.append(env)
        if env.get("more"):
            assert env.get("next"), f"'more': true without 'next' (taxii2-client would loop): {list(env)}"
        assert len(pages) < PAGED + 50, "pagination does not terminate"
    return pages


# ---------------------------------------------------------------------------- discovery, API root, collections


def test_discovery(node):
    server = Server(f"{node.base}/taxii2/", auth=Bearer(node.writer))
    assert server.title
    roots = [r.url for r in server.api_roots]
    assert node.api_root in roots, roots
    assert server.default is not None, server._raw
    assert server.default.url == node.api_root
    # The same through HTTP Basic.
    basic = Server(f"{node.base}/taxii2/", user="alice", password=PASSWORD)
    assert basic.title == server.title
    r = node.get(f"{node.base}/taxii2/")
    assert r.status_code == 200
    assert_taxii_content_type(r)
    no_empty_lists(r.json())


def test_api_root(node):
    root = ApiRoot(node.api_root, auth=Bearer(node.writer))
    assert root.title
    assert TAXII in root.versions, root.versions
    assert root.max_content_length == MAX_CONTENT_LENGTH
    r = node.get(node.api_root)
    assert_taxii_content_type(r)
    assert r.json()["max_content_length"] == MAX_CONTENT_LENGTH


def test_collections_listing(node):
    root = ApiRoot(node.api_root, auth=Bearer(node.writer))
    by_alias = {c.alias: c for c in root.collections}
    for alias in ("intel", "work", "secret", "ics", "ro"):
        c = by_alias[alias]
        assert c.id == node.cols[alias]["id"]
        assert uuid.UUID(c.id).version == 4
        assert c.title
        assert c.can_read is True
        assert c.can_write is (alias != "ro"), (alias, c._raw)
        if c.media_types:
            assert any(m.startswith("application/stix+json") for m in c.media_types), c.media_types
    ids = [c.id for c in root.collections]
    assert len(ids) == len(set(ids))
    # Collections come back in a stable order.
    r1 = node.get(node.api_root + "collections/").json()
    r2 = node.get(node.api_root + "collections/").json()
    assert [c["id"] for c in r1["collections"]] == [c["id"] for c in r2["collections"]]
    no_empty_lists(r1)


def test_collection_by_id(node):
    col = node.collection("work")
    assert col.id == node.cols["work"]["id"]
    assert col.alias == "work"
    assert col.title
    assert col.can_read is True and col.can_write is True
    r = node.get(node.col_url("work"))
    assert r.status_code == 200
    assert_taxii_content_type(r)
    assert r.json()["id"] == col.id


# ---------------------------------------------------------------------------- paging


@pytest.mark.parametrize("per_request", [1, 7, 100, 1000, 5000])
def test_as_pages_objects(node, paged, per_request):
    # The partner token can read `intel` only.
    col = node.collection("intel", token=node.reader)
    pages = all_pages(col.get_objects, per_request)
    seen = []
    for env in pages:
        no_empty_lists(env)
        objs = env.get("objects", [])
        assert len(objs) <= max(per_request, 1), f"{len(objs)} objects for limit={per_request}"
        seen.extend(o["id"] for o in objs)
    assert not pages[-1].get("more")
    assert len(seen) == PAGED, f"{len(seen)} objects for {PAGED} posted"
    assert len(set(seen)) == PAGED, "duplicates across pages"
    assert set(seen) == set(paged)
    # Ascending date_added: the envelopes were posted one after another.
    batch_order = [paged[i] for i in seen]
    assert batch_order == sorted(batch_order), "objects not in ascending date_added order"


@pytest.mark.parametrize("per_request", [7, 1000])
def test_as_pages_manifest(node, paged, per_request):
    col = node.collection("intel", token=node.reader)
    records = []
    for env in all_pages(col.get_manifest, per_request):
        no_empty_lists(env)
        assert len(env.get("objects", [])) <= per_request
        records.extend(env.get("objects", []))
    assert len(records) == PAGED
    assert {r["id"] for r in records} == set(paged)
    for r in records:
        assert MICROS.match(r["date_added"]), f"date_added without microseconds: {r['date_added']}"
        assert ts(r["version"]) == ts(TS0), r
        if "media_type" in r:
            assert r["media_type"].startswith("application/stix+json"), r
    keys = [ts(r["date_added"]) for r in records]
    assert keys == sorted(keys), "manifest not in ascending date_added order"
    batch_order = [paged[r["id"]] for r in records]
    assert batch_order == sorted(batch_order)


def manifest_dates(node, alias, token=None):
    """The whole manifest, paged as TAXII 2.1 section 3.4 says: follow `next`, or repeat the
    query with added_after = X-TAXII-Date-Added-Last when there is none (the manifest
    resource defines no `next`)."""
    url = node.col_url(alias) + "manifest/"
    params = {"limit": 1000}
    records = []
    for _ in range(PAGED):
        r = node.get(url, token=token, params=params)
        assert r.status_code == 200, r.text[:300]
        env = r.json()
        records += env.get("objects", [])
        if not env.get("more"):
            return {r["id"]: r["date_added"] for r in records}, records
        if env.get("next"):
            params = {"limit": 1000, "next": env["next"]}
        else:
            params = {"limit": 1000, "added_after": r.headers["X-TAXII-Date-Added-Last"]}
    raise AssertionError("manifest paging does not terminate")


@pytest.mark.parametrize("endpoint", ["objects", "manifest"])
def test_date_added_headers(node, paged, endpoint):
    """X-TAXII-Date-Added-First/Last on every page, equal to the page's first/last date_added."""
    dates, _ = manifest_dates(node, "intel")
    url = node.col_url("intel") + endpoint + "/"
    params = {"limit": 450}
    total = 0
    for _ in range(PAGED):
        r = node.get(url, token=node.reader, params=params)
        assert r.status_code == 200, r.text[:300]
        assert_taxii_content_type(r)
        env = r.json()
        items = env.get("objects", [])
        total += len(items)
        if items:
            first = r.headers.get("X-TAXII-Date-Added-First")
            last = r.headers.get("X-TAXII-Date-Added-Last")
            assert first and last, dict(r.headers)
            assert MICROS.match(first) and MICROS.match(last), (first, last)
            assert ts(first) == ts(dates[items[0]["id"]])
            assert ts(last) == ts(dates[items[-1]["id"]])
        if not env.get("more"):
            break
        if endpoint == "objects":
            assert env.get("next"), "'more' without 'next'"
        if env.get("next"):
            params = {"limit": 450, "next": env["next"]}
        else:  # the manifest resource defines no `next` (section 3.4 fallback)
            params = {"limit": 450, "added_after": r.headers["X-TAXII-Date-Added-Last"]}
    assert total == PAGED


def test_added_after_is_exclusive(node, paged):
    _, records = manifest_dates(node, "intel")
    cut = records[1234]["date_added"]
    expected = {r["id"] for r in records if ts(r["date_added"]) > ts(cut)}
    assert expected and len(expected) < PAGED
    col = node.collection("intel", token=node.reader)
    got = [o["id"] for env in all_pages(col.get_objects, 1000, added_after=cut) for o in env.get("objects", [])]
    assert len(got) == len(set(got))
    assert set(got) == expected


def test_match_type_without_result_is_empty_envelope(node, paged):
    col = node.collection("intel", token=node.reader)
    env = col.get_objects(type="malware")
    assert "objects" not in env, "empty lists are forbidden: omit 'objects'"
    assert not env.get("more")
    env = col.get_objects(type="indicator", limit=5)
    assert len(env["objects"]) == 5 and env["more"] is True and env["next"]
    assert all(o["type"] == "indicator" for o in env["objects"])


def test_next_is_bound_to_its_query(node, paged):
    """`next` is client input: reused with another query it must not leak other objects."""
    url = node.col_url("intel") + "objects/"
    env = node.get(url, token=node.reader, params={"limit": 10}).json()
    token = env["next"]
    # Same collection, different filter.
    r = node.get(url, token=node.reader, params={"limit": 10, "next": token, "match[type]": "malware"})
    if r.status_code == 200:
        assert all(o["type"] == "malware" for o in r.json().get("objects", [])), "next ignored the new filter"
    else:
        assert_error(r, r.status_code)
        assert 400 <= r.status_code < 500
    # Another collection: none of intel's objects may come back from `ics`.
    r = node.get(node.col_url("ics") + "objects/", params={"limit": 10, "next": token})
    if r.status_code == 200:
        leaked = [o["id"] for o in r.json().get("objects", []) if o["id"] in paged]
        assert not leaked, "a next token from `intel` returned intel objects from `ics`"
    else:
        assert_error(r, r.status_code)
        assert 400 <= r.status_code < 500


# ---------------------------------------------------------------------------- add objects, status


def test_add_objects_with_status_polling(node):
    col = node.collection("work")
    objs = [indicator(ip=f"203.0.113.{i}") for i in range(10)]
    envelope = {"objects": objs}
    status = col.add_objects(envelope, poll_interval=0.2, timeout=30)
    assert status.status == "complete", status._raw
    assert status.total_count == 10
    assert status.success_count == 10
    assert status.failure_count == 0
    assert status.pending_count == 0
    if status.successes:
        assert {s["id"] for s in status.successes} == {o["id"] for o in objs}
        for s in status.successes:
            assert ts(s["version"]) == ts(TS0), s
    if status.request_timestamp:
        assert MICROS.match(status.request_timestamp), status.request_timestamp

    # The status resource can be fetched again by id.
    root = ApiRoot(node.api_root, auth=Bearer(node.writer))
    again = root.get_status(status.id)
    assert again.status == "complete"
    assert (again.total_count, again.success_count, again.failure_count) == (10, 10, 0)

    # Re-posting the identical envelope is a success, not an error.
    status2 = col.add_objects(envelope, poll_interval=0.2, timeout=30)
    assert status2.status == "complete", status2._raw
    assert status2.id != status.id
    assert (status2.total_count, status2.success_count, status2.failure_count) == (10, 10, 0), status2._raw
    # ... and stores nothing twice.
    env = col.get_manifest(id=objs[0]["id"], version="all")
    assert len(env["objects"]) == 1

    for o in objs:
        got = col.get_object(o["id"])["objects"]
        assert got == [o]


def test_add_objects_with_basic_auth(node):
    col = node.collection("work", user="alice", password=PASSWORD)
    obj = indicator(ip="203.0.113.200")
    status = col.add_objects({"objects": [obj]}, poll_interval=0.2, timeout=30)
    assert status.status == "complete" and status.success_count == 1, status._raw
    assert col.get_object(obj["id"])["objects"] == [obj]


def test_add_objects_one_invalid_among_valid(node):
    col = node.collection("work")
    good = [indicator(ip=f"192.0.2.{i}") for i in range(4)]
    bad = indicator(ip="192.0.2.99")
    del bad["pattern"]  # required by STIX 2.1
    objs = good[:2] + [bad] + good[2:]
    status = col.add_objects({"objects": objs}, poll_interval=0.2, timeout=30)
    assert status.status == "complete", status._raw
    assert status.total_count == 5
    assert status.success_count == 4
    assert status.failure_count == 1
    assert status.pending_count == 0
    assert len(status.failures) == 1, status._raw
    failure = status.failures[0]
    assert failure["id"] == bad["id"]
    assert isinstance(failure.get("message"), str) and failure["message"], failure
    assert "version" in failure, f"status-details need a version: {failure}"
    for o in good:
        assert col.get_object(o["id"])["objects"] == [o]
    with pytest.raises(HTTPError) as e:
        col.get_object(bad["id"])
    assert e.value.response.status_code == 404


def test_conflicting_version_is_not_overwritten(node):
    """Same id and modified, different content: refused per object, the stored one stays."""
    col = node.collection("work")
    obj = indicator(ip="192.0.2.150")
    assert col.add_objects({"objects": [obj]}, poll_interval=0.2, timeout=30).success_count == 1
    other = dict(obj, name="a different object under the same id and modified")
    status = col.add_objects({"objects": [other]}, poll_interval=0.2, timeout=30)
    assert status.total_count == 1
    assert status.failure_count == 1, status._raw
    assert status.failures[0]["id"] == obj["id"] and status.failures[0].get("message")
    assert col.get_object(obj["id"], version="all")["objects"] == [obj]


@pytest.mark.parametrize(
    "body",
    [b"this is not JSON", b'{"objects": "not a list"}', b'{"objects": [1, 2]', b"[]"],
    ids=["not-json", "objects-not-a-list", "truncated", "not-an-envelope"],
)
def test_unprocessable_body_is_4xx_with_error(node, body):
    r = node.post(node.col_url("work") + "objects/", body)
    assert r.status_code in (400, 422), (r.status_code, r.text[:300])
    assert_error(r, r.status_code)


def test_status_url_as_taxii2_client_builds_it(node):
    """The status URL taxii2-client derives from the collection URL (`../../status/{id}`, to
    which it appends the missing `/`) and polls while a status is pending."""
    col = node.collection("work")
    status = col.add_objects({"objects": [indicator()]}, wait_for_completion=False)
    url = urllib.parse.urljoin(col.url, f"../../status/{status.id}")
    assert not url.endswith("/")
    polled = Status(url, auth=Bearer(node.writer))
    polled.wait_until_final(poll_interval=0.2, timeout=30)
    assert polled.status == "complete" and polled.success_count == 1
    # An unknown status is 404.
    r = node.get(f"{node.api_root}status/{uuid.uuid4()}/")
    assert_error(r, 404)


# ---------------------------------------------------------------------------- object, versions, manifest, delete


def test_versions_object_manifest_and_delete(node):
    col = node.collection("work")
    t = ["2024-01-01T00:00:00.000Z", "2024-02-01T00:00:00.000Z", "2024-03-01T12:30:00.123Z"]
    base = indicator(ip="198.51.100.50")
    versions = [dict(base, modified=m, name=f"version {i}") for i, m in enumerate(t)]
    for v in versions:  # one POST per version: distinct, ascending date_added
        status = col.add_objects({"objects": [v]}, poll_interval=0.2, timeout=30)
        assert status.success_count == 1, status._raw
    oid = base["id"]

    # Get an object: latest version by default; first, all, or an exact version on request.
    assert col.get_object(oid)["objects"] == [versions[2]]
    assert col.get_object(oid, version="first")["objects"] == [versions[0]]
    assert col.get_object(oid, version=t[1])["objects"] == [versions[1]]
    everything = col.get_object(oid, version="all")["objects"]
    assert sorted(everything, key=lambda o: o["modified"]) == versions

    # Versions endpoint.
    env = col.object_versions(oid)
    assert sorted(map(ts, env["versions"])) == [ts(x) for x in t]
    assert not env.get("more")

    # Manifest: default is the latest version; all on request, ascending date_added.
    man = col.get_manifest(id=oid)["objects"]
    assert len(man) == 1 and ts(man[0]["version"]) == ts(t[2]) and man[0]["id"] == oid
    man = col.get_manifest(id=oid, version="all")["objects"]
    assert [ts(r["version"]) for r in man] == [ts(x) for x in t]
    added = [ts(r["date_added"]) for r in man]
    assert added == sorted(added) and len(set(added)) == 3

    # X-TAXII-Date-Added-* on the object and versions endpoints too.
    for path in (f"objects/{oid}/", f"objects/{oid}/versions/"):
        r = node.get(node.col_url("work") + path)
        assert r.status_code == 200
        assert MICROS.match(r.headers.get("X-TAXII-Date-Added-First", "")), (path, dict(r.headers))
        assert MICROS.match(r.headers.get("X-TAXII-Date-Added-Last", "")), (path, dict(r.headers))

    # DELETE one version (match[version]), then the whole object.
    col.delete_object(oid, version=t[0])
    assert sorted(map(ts, col.object_versions(oid)["versions"])) == [ts(t[1]), ts(t[2])]
    col.delete_object(oid)
    with pytest.raises(HTTPError) as e:
        col.get_object(oid)
    assert e.value.response.status_code == 404
    assert "objects" not in col.get_manifest(id=oid, version="all")
    assert oid not in {r["id"] for env in all_pages(col.get_manifest, 1000) for r in env.get("objects", [])}
    assert "objects" not in col.get_objects(id=oid)


def test_delete_single_version_object(node):
    col = node.collection("work")
    obj = indicator(ip="198.51.100.60")
    assert col.add_objects({"objects": [obj]}, poll_interval=0.2, timeout=30).success_count == 1
    assert col.get_object(obj["id"])["objects"] == [obj]
    r = requests.delete(
        node.col_url("work") + f"objects/{obj['id']}/", headers={"Accept": TAXII}, auth=Bearer(node.writer)
    )
    assert r.status_code == 200, r.text
    r = node.get(node.col_url("work") + f"objects/{obj['id']}/")
    assert_error(r, 404)
    assert "objects" not in col.get_manifest(id=obj["id"])
    # Deleting it again: it is not there.
    r = requests.delete(
        node.col_url("work") + f"objects/{obj['id']}/", headers={"Accept": TAXII}, auth=Bearer(node.writer)
    )
    assert_error(r, 404)


# ---------------------------------------------------------------------------- error paths


@pytest.mark.parametrize("accept", ["application/json", "application/taxii+json;version=2.0", "text/html"])
def test_bad_accept_is_406(node, accept):
    for url in (
        f"{node.base}/taxii2/",
        node.api_root,
        node.api_root + "collections/",
        node.col_url("work"),
        node.col_url("work") + "objects/",
        node.col_url("work") + "manifest/",
    ):
        r = node.get(url, accept=accept)
        assert r.status_code == 406, (url, r.status_code, r.text[:200])
        assert_error(r, 406)


def test_accept_without_version_means_latest(node):
    r = node.get(f"{node.base}/taxii2/", accept="application/taxii+json")
    assert r.status_code == 200, r.text[:300]
    assert_taxii_content_type(r)


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/stix+json;version=2.1"])
def test_bad_content_type_is_415(node, content_type):
    r = node.post(node.col_url("work") + "objects/", {"objects": [indicator()]}, content_type=content_type)
    assert_error(r, 415)


def test_bad_credentials_are_401(node):
    urls = (f"{node.base}/taxii2/", node.api_root, node.api_root + "collections/")
    for auth in (
        Bearer("not-a-token"),
        Bearer(node.writer + "x"),
        requests.auth.HTTPBasicAuth("alice", "wrong password"),
        requests.auth.HTTPBasicAuth("mallory", PASSWORD),
    ):
        for url in urls:
            r = node.get(url, auth=auth)
            assert_error(r, 401)
            assert r.headers.get("WWW-Authenticate"), (url, dict(r.headers))
        # Collection endpoints may answer 404 instead of 401.
        r = node.get(node.col_url("work") + "objects/", auth=auth)
        assert r.status_code in (401, 404), r.status_code
        if r.status_code == 401:
            assert r.headers.get("WWW-Authenticate")
        r = node.post(node.col_url("work") + "objects/", {"objects": [indicator()]}, auth=auth)
        assert r.status_code in (401, 404), r.status_code
    # Through taxii2-client.
    with pytest.raises(HTTPError) as e:
        Server(f"{node.base}/taxii2/", user="alice", password="wrong password").title
    assert e.value.response.status_code == 401


def test_no_credentials_are_401(node):
    for url in (f"{node.base}/taxii2/", node.api_root, node.api_root + "collections/"):
        r = node.get(url, auth=None)
        assert_error(r, 401)
        assert r.headers.get("WWW-Authenticate"), (url, dict(r.headers))
    r = node.get(node.col_url("intel") + "objects/", auth=None)
    assert r.status_code in (401, 404)
    # /healthz needs none.
    assert requests.get(f"{node.base}/healthz").status_code == 200


def test_unknown_collection_is_404(node):
    unknown = f"{node.api_root}collections/{uuid.uuid4()}/"
    for path in ("", "objects/", "manifest/", f"objects/indicator--{uuid.uuid4()}/"):
        assert_error(node.get(unknown + path), 404)
    assert_error(node.post(unknown + "objects/", {"objects": [indicator()]}), 404)
    with pytest.raises(HTTPError) as e:
        Collection(unknown, auth=Bearer(node.writer)).refresh()
    assert e.value.response.status_code == 404
    # Unknown API root and unknown object.
    assert_error(node.get(f"{node.base}/no-such-root/"), 404)
    assert_error(node.get(node.col_url("work") + f"objects/indicator--{uuid.uuid4()}/"), 404)


def test_read_only_collection(node):
    col = node.collection("ro")
    assert col.can_read is True
    assert col.can_write is False
    with pytest.raises(AccessError):
        col.add_objects({"objects": [indicator()]})
    r = node.post(node.col_url("ro") + "objects/", {"objects": [indicator()]})
    assert r.status_code in (403, 404), (r.status_code, r.text[:300])  # spec: 403, or 404
    assert_error(r, r.status_code)
    # Reading it is allowed.
    r = node.get(node.col_url("ro") + "objects/")
    assert r.status_code == 200 and "objects" not in r.json()


def test_token_scoped_to_one_collection(node, paged):
    # Listing: intel readable but not writable; secret not readable (or not listed).
    root = ApiRoot(node.api_root, auth=Bearer(node.reader))
    by_alias = {c.alias: c for c in root.collections}
    assert by_alias["intel"].can_read is True
    assert by_alias["intel"].can_write is False
    if "secret" in by_alias:
        assert by_alias["secret"].can_read is False
    # Another collection's content: 403 or 404.
    for path in ("objects/", "manifest/"):
        r = node.get(node.col_url("secret") + path, token=node.reader)
        assert r.status_code in (403, 404), (path, r.status_code, r.text[:200])
        assert_error(r, r.status_code)
    r = node.get(node.col_url("secret"), token=node.reader)
    if r.status_code == 200:
        assert r.json()["can_read"] is False
    else:
        assert r.status_code in (403, 404)
        assert_error(r, r.status_code)
    # Writing intel: refused.
    with pytest.raises(AccessError):
        node.collection("intel", token=node.reader).add_objects({"objects": [indicator()]})
    r = node.post(node.col_url("intel") + "objects/", {"objects": [indicator()]}, token=node.reader)
    assert r.status_code in (403, 404)
    assert_error(r, r.status_code)
    victim = next(iter(paged))
    r = requests.delete(
        node.col_url("intel") + f"objects/{victim}/", headers={"Accept": TAXII}, auth=Bearer(node.reader)
    )
    assert r.status_code in (403, 404)
    assert node.get(node.col_url("intel") + f"objects/{victim}/").status_code == 200


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "-1"}, {"limit": "ten"}, {"added_after": "yesterday"}],
    ids=["limit=0", "limit=-1", "limit=ten", "added_after=yesterday"],
)
def test_bad_query_parameters_are_400(node, params):
    for path in ("objects/", "manifest/"):
        assert_error(node.get(node.col_url("work") + path, params=params), 400)
    if params.get("limit") == "0":
        # taxii2-client drops a falsy limit; the string "0" goes through as limit=0.
        with pytest.raises(HTTPError) as e:
            node.collection("work").get_objects(limit="0")
        assert e.value.response.status_code == 400


def padded_envelope(size):
    """A valid envelope of one indicator, exactly `size` bytes long."""
    obj = indicator(ip="198.51.100.77", description="")
    overhead = len(json.dumps({"objects": [obj]}).encode())
    obj["description"] = "x" * (size - overhead)
    body = json.dumps({"objects": [obj]}).encode()
    assert len(body) == size
    return obj, body


def test_max_content_length(node):
    url = node.col_url("work") + "objects/"
    # Above the limit: 413.
    _, body = padded_envelope(MAX_CONTENT_LENGTH + 1)
    assert_error(node.post(url, body), 413)
    _, body = padded_envelope(4 * MAX_CONTENT_LENGTH)
    assert_error(node.post(url, body), 413)
    # Above the limit without a Content-Length (chunked): 413 too.
    _, body = padded_envelope(MAX_CONTENT_LENGTH + 1000)
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    assert_error(node.post(url, chunks), 413)
    # Just below and exactly at the limit: accepted.
    for size in (MAX_CONTENT_LENGTH - 1, MAX_CONTENT_LENGTH):
        obj, body = padded_envelope(size)
        r = node.post(url, body)
        assert r.status_code == 202, (size, r.status_code, r.text[:300])
        status = r.json()
        if status["status"] != "complete":
            polled = Status(f"{node.api_root}status/{status['id']}/", auth=Bearer(node.writer))
            polled.wait_until_final(poll_interval=0.2, timeout=30)
            status = polled._raw
        assert status["success_count"] == 1, status
        assert node.collection("work").get_object(obj["id"])["objects"] == [obj]


# ---------------------------------------------------------------------------- STIX validity of what is served


def test_everything_served_validates(node, paged, tmp_path):
    original = {o["id"]: o for o in json.loads(ICS.read_text())["objects"]}
    col = node.collection("ics")
    served = [o for env in all_pages(col.get_objects, 1000, version="all") for o in env.get("objects", [])]
    assert len(served) == len(original) == 1826
    assert {o["id"] for o in served} == set(original)
    for o in served:
        assert o == original[o["id"]], o["id"]
    # Plus everything in the other collections the tests wrote to.
    for alias in ("intel", "work"):
        c = node.collection(alias)
        served += [o for env in all_pages(c.get_objects, 1000, version="all") for o in env.get("objects", [])]
    bundle = tmp_path / "served.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": served}))
    results = validate_file(str(bundle), ValidationOptions(version="2.1"))
    errors = [(r.object_id, e) for r in results.object_results for e in r.errors]
    assert results.is_valid, errors[:10]


# ---------------------------------------------------------------------------- serve on a fresh data directory, shutdown


def try_credentials(base, text):
    """Find the one-time admin credential in serve's output: a bearer token, a password for
    a user named there (or `admin`), or USER:PASSWORD."""
    words = set(re.findall(r"[A-Za-z0-9._~+/=:!@#$%^&*-]{12,}", text))
    words = {w.strip(".,;'\"") for w in words if "://" not in w and not w.startswith("127.0.0.1")}
    users = {"admin"} | set(re.findall(r"(?:user(?:name)?|login)\W+([A-Za-z0-9._@-]+)", text, re.I))
    attempts = []
    for w in words:
        attempts.append(Bearer(w))
        attempts += [requests.auth.HTTPBasicAuth(u, w) for u in users]
        if ":" in w:
            u, p = w.split(":", 1)
            attempts.append(requests.auth.HTTPBasicAuth(u, p))
    for auth in attempts:
        r = requests.get(f"{base}/taxii2/", headers={"Accept": TAXII}, auth=auth, timeout=10)
        if r.status_code == 200:
            return auth
    return None


def test_serve_on_a_fresh_data_directory(tmp_path):
    data = tmp_path / "fresh"
    proc, base = start_server(data, tmp_path / "serve.log")
    try:
        time.sleep(0.3)  # let it flush its banner
        out = (tmp_path / "serve.log").read_text(errors="replace")
        assert base.split("//")[1] in out, f"serve does not print its URL:\n{out}"
        auth = try_credentials(base, out)
        assert auth is not None, f"no working admin credential found in serve's output:\n{out}"
        root = ApiRoot(f"{base}/default/", auth=auth)
        assert TAXII in root.versions
        default = [c for c in root.collections if c.alias == "default"]
        assert len(default) == 1, [c._raw for c in root.collections]
        assert default[0].can_read and default[0].can_write
        server = Server(f"{base}/taxii2/", auth=auth)
        assert server.default is not None and server.default.url == f"{base}/default/"
        # The admin can write to it.
        obj = indicator()
        status = default[0].add_objects({"objects": [obj]}, poll_interval=0.2, timeout=30)
        assert status.success_count == 1
    finally:
        rc = stop_server(proc)
    assert rc == 0, f"serve did not exit cleanly on Ctrl-C: {rc}"
    cols = json.loads(phalanx(data, "--json", "collection", "list").stdout)
    assert "default" in [c["alias"] for c in cols]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_shutdown_keeps_what_was_acknowledged(tmp_path, sig):
    data = tmp_path / "data"
    phalanx(data, "collection", "create", "c")
    cols = {c["alias"]: c for c in json.loads(phalanx(data, "--json", "collection", "list").stdout)}
    token = phalanx(data, "token", "create", "--org", "local", "--write", "c").stdout.strip()
    proc, base = start_server(data, tmp_path / "serve.log")
    posted = []
    try:
        col = Collection(f"{base}/default/collections/{cols['c']['id']}/", auth=Bearer(token))
        for b in range(5):
            objs = [indicator(ip=f"10.9.{b}.{i}") for i in range(50)]
            status = col.add_objects({"objects": objs}, poll_interval=0.2, timeout=30)
            assert status.status == "complete" and status.success_count == 50
            posted += [o["id"] for o in objs]
    finally:
        rc = stop_server(proc, sig)
    assert rc == 0, f"serve exited with {rc} on {sig.name}"
    res = phalanx(data, "export", "--collection", "c", "--format", "jsonl")
    stored = {json.loads(line)["id"] for line in res.stdout.splitlines() if line.strip()}
    assert set(posted) <= stored, f"{len(set(posted) - stored)} acknowledged objects lost"


# ---------------------------------------------------------------- sharing policy


AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"

AGREEMENT = """
id = "mou-interop"
title = "Interop test agreement"
status = "active"
parties = ["cert-eu"]
max_tlp = "AMBER"
valid_from = "2020-01-01T00:00:00Z"
[scope]
collections = ["shared"]
"""


def test_partner_sees_what_the_agreement_allows_through_taxii2_client(tmp_path):
    """A partner's token, used by taxii2-client: objects, manifest, single object and
    versions show exactly what the agreement and the markings allow; a granular RED
    description is redacted; suspending the agreement stops the flow at once."""
    data = tmp_path / "data"
    phalanx(data, "collection", "create", "shared")
    phalanx(data, "partner", "add", "cert-eu", "--name", "CERT-EU", "--sector", "government")
    phalanx(data, "partner", "add", "acme", "--name", "Acme", "--sector", "private")
    phalanx(data, "agreement", "add", "-", input=AGREEMENT)
    amber = indicator(ip="203.0.113.1", object_marking_refs=[AMBER], description="human source",
                      granular_markings=[{"selectors": ["description"], "marking_ref": RED}])
    red = indicator(ip="203.0.113.2", object_marking_refs=[RED])
    green = indicator(ip="203.0.113.3", object_marking_refs=[GREEN])
    unmarked = indicator(ip="203.0.113.4")
    bundle = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [amber, red, green, unmarked]}
    phalanx(data, "import", "--collection", "shared", "-", input=json.dumps(bundle))
    partner = phalanx(data, "token", "create", "--org", "cert-eu", "--read").stdout.strip()
    acme = phalanx(data, "token", "create", "--org", "acme", "--read").stdout.strip()
    proc, base = start_server(data, tmp_path / "serve.log")
    try:
        def collection(token):
            root = ApiRoot(f"{base}/default/", auth=Bearer(token))
            return [c for c in root.collections if c.alias == "shared"][0]

        col = collection(partner)
        got = {o["id"]: o for o in col.get_objects().get("objects", [])}
        # AMBER and unmarked (default AMBER) are covered; RED is not; GREEN: community.
        assert set(got) == {amber["id"], green["id"], unmarked["id"]}, set(got)
        assert "description" not in got[amber["id"]] and "granular_markings" not in got[amber["id"]]
        assert got[amber["id"]]["pattern"] == amber["pattern"]
        manifest = {r["id"] for r in col.get_manifest().get("objects", [])}
        assert manifest == set(got)
        with pytest.raises(HTTPError) as e:
            col.get_object(red["id"])
        assert e.value.response.status_code == 404
        with pytest.raises(HTTPError) as e:
            col.object_versions(red["id"])
        assert e.value.response.status_code == 404
        assert col.get_object(green["id"])["objects"][0]["id"] == green["id"]
        # Acme has no agreement: not in the community, nothing but CLEAR (none here).
        assert collection(acme).get_objects().get("objects", []) == []
        # Suspension applies to the running server at once.
        phalanx(data, "agreement", "suspend", "mou-interop")
        assert col.get_objects().get("objects", []) == []
        assert col.get_manifest().get("objects", []) == []
    finally:
        stop_server(proc)
