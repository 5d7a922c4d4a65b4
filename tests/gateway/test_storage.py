"""Storage engines: a file:// folder replicas can share, and S3 against a real local S3 server (moto)."""

from __future__ import annotations

import calendar
import errno
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3  # type: ignore[import-untyped]
import httpx
import pytest
from moto.server import ThreadedMotoServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.app import create_app
from gateway.files import MirrorError, ResultStore
from gateway.settings import Settings
from gateway.storage import open_storage
from gateway.storage.folder import FolderStorage
from gateway.storage.s3 import S3Storage
from gateway.store import jobs as job_store
from tests.conftest import bearer, make_settings
from tests.gateway.test_generate import assert_error
from tests.servers import free_port, serving

pytestmark = pytest.mark.anyio

WAV = b"RIFF" + bytes(range(256)) * 16
SIGNING_KEY = "storage-test-signing-key"


async def upstream_file(request: Request) -> Response:
    kind = request.path_params["kind"]
    if kind == "out.wav":
        return Response(WAV, media_type="audio/wav")
    return Response("<html>not media</html>", media_type="text/html")


UPSTREAM = Starlette(routes=[Route("/{kind}", upstream_file)])


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    """A real HTTP server on loopback standing in for a provider's result CDN."""
    async with serving(UPSTREAM, lifespan="off") as url:
        yield url


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A real S3-speaking server on 127.0.0.1 (moto in server mode), shared by this module's tests."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Dummy credentials and AWS_ENDPOINT_URL for boto3 to find by itself; a fresh bucket each test."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL_S3",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    ):
        monkeypatch.delenv(name, raising=False)
    # Nothing from the developer's ~/.aws may leak in (a profile's endpoint would win over ours).
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    bucket = f"media-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    return bucket


def s3_client() -> Any:
    return boto3.client("s3", region_name="eu-west-1")


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """The app with its lifespan; requests to testserver go to it, redirects elsewhere go out for real."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        mounts = {"http://testserver": httpx.ASGITransport(app=app)}
        async with httpx.AsyncClient(
            mounts=mounts, transport=httpx.AsyncHTTPTransport(), base_url="http://testserver"
        ) as client:
            yield app, client


def results(app: Starlette) -> ResultStore:
    store: ResultStore = app.state.services.results
    return store


def local(url: str) -> str:
    return url.removeprefix("http://testserver")


async def new_job(app: Starlette, client: httpx.AsyncClient) -> str:
    """A real job row, so the sweep has something to find past its retention."""
    response = await client.post(
        "/admin/keys", json={"name": "t", "tokens": 100}, headers={"Authorization": "Bearer admin-test-token"}
    )
    key = response.json()["key"]
    created = await client.post(
        "/api/generations", json={"model": "echo", "prompt": "x"}, headers=bearer(key)
    )
    job_id: str = created.json()["id"]
    return job_id


async def expire_results(app: Starlette, job_id: str) -> None:
    db = app.state.services.db
    await db.write(
        lambda conn: conn.execute(
            "UPDATE jobs SET status = 'completed', expires_at = '2000-01-01T00:00:00Z' WHERE id = ?",
            (job_id,),
        )
    )


# --- choosing an engine ------------------------------------------------------------------------------


def test_open_storage_picks_the_engine_from_the_url(tmp_path: Path, s3_bucket: str) -> None:
    default = open_storage(make_settings(tmp_path))
    assert isinstance(default, FolderStorage) and default.root == tmp_path / "files"
    shared = open_storage(make_settings(tmp_path, storage_url="file:///srv/shared%20results"))
    assert isinstance(shared, FolderStorage) and shared.root == Path("/srv/shared results")
    s3 = open_storage(make_settings(tmp_path, storage_url=f"s3://{s3_bucket}/a/b/"))
    assert isinstance(s3, S3Storage) and (s3.bucket, s3.prefix) == (s3_bucket, "a/b")
    assert s3.key("job_1", "result-1.wav") == "a/b/job_1/result-1.wav"
    assert S3Storage(s3_bucket, "", client=s3.client).key("job_1", "r.png") == "job_1/r.png"
    for bad in ("file://relative/path", "http://example.invalid/x", "s3:///prefix-only"):
        with pytest.raises(ValueError):
            open_storage(make_settings(tmp_path, storage_url=bad))


# --- folder (file://) ----------------------------------------------------------------------------------


async def test_file_url_folder_is_shared_by_replicas(tmp_path: Path, upstream: str) -> None:
    volume = tmp_path / "volume"
    storage_url = volume.as_uri()
    first = make_settings(tmp_path / "one", storage_url=storage_url, url_signing_key=SIGNING_KEY)
    second = make_settings(tmp_path / "two", storage_url=storage_url, url_signing_key=SIGNING_KEY)
    async with running(first) as (app, client), running(second) as (_, other):
        job_id = await new_job(app, client)
        urls, content_type = await results(app).mirror(
            job_id, [f"{upstream}/out.wav"], int(time.time()) + 600, trusted=[upstream]
        )
        assert content_type == "audio/wav"
        assert (volume / job_id / "result-1.wav").read_bytes() == WAV
        assert not (first.files_dir / job_id).exists()
        assert list((first.data_dir / "staging").iterdir()) == []
        # The other replica has its own data dir but the same volume and key: it serves the link too.
        for replica in (client, other):
            response = await replica.get(local(urls[0]))
            assert response.status_code == 200 and response.content == WAV
            ranged = await replica.get(local(urls[0]), headers={"Range": "bytes=4-13"})
            assert ranged.status_code == 206 and ranged.content == WAV[4:14]
        await expire_results(app, job_id)
        assert await results(app).sweep(app.state.services.db) == 1
        assert not (volume / job_id).exists()
        assert_error(await other.get(local(urls[0])), 404, "not_found")


# --- S3 ------------------------------------------------------------------------------------------------


async def test_s3_mirror_redirect_range_and_sweep(
    tmp_path: Path, s3_bucket: str, moto_url: str, upstream: str
) -> None:
    settings = make_settings(tmp_path, storage_url=f"s3://{s3_bucket}/results")
    async with running(settings) as (app, client):
        store = results(app)
        job_id = await new_job(app, client)
        expires = int(time.time()) + 600
        urls, content_type = await store.mirror(job_id, [f"{upstream}/out.wav"], expires, trusted=[upstream])
        assert content_type == "audio/wav"
        url = local(urls[0])
        assert url.startswith(f"/files/{job_id}/result-1.wav?expires={expires}&signature=")
        key = f"results/{job_id}/result-1.wav"
        head = s3_client().head_object(Bucket=s3_bucket, Key=key)
        assert head["ContentType"] == "audio/wav" and head["ContentLength"] == len(WAV)
        assert list((settings.data_dir / "staging").iterdir()) == []
        assert not settings.files_dir.exists() or not any(settings.files_dir.iterdir())

        # The gateway redirects to a presigned GET on the S3 server that dies before the link does.
        redirect = await client.get(url)
        assert redirect.status_code == 307 and redirect.headers["cache-control"] == "no-store"
        location = redirect.headers["location"]
        assert location.startswith(f"{moto_url}/{s3_bucket}/{key}?")
        query = parse_qs(urlsplit(location).query)
        signed_at = calendar.timegm(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"))
        assert signed_at + int(query["X-Amz-Expires"][0]) <= expires
        assert query["response-content-type"] == ["audio/wav"]

        response = await client.get(url, follow_redirects=True)
        assert response.status_code == 200 and response.content == WAV
        assert response.headers["content-type"] == "audio/wav"
        assert response.headers["content-disposition"] == 'inline; filename="result-1.wav"'
        ranged = await client.get(url, headers={"Range": "bytes=100-199"}, follow_redirects=True)
        assert ranged.status_code == 206 and ranged.content == WAV[100:200]
        assert ranged.headers["content-range"] == f"bytes 100-199/{len(WAV)}"

        # HEAD and a range past the end are answered by the gateway itself, as with the folder engine.
        head_response = await client.head(url)
        assert head_response.status_code == 200
        assert head_response.headers["content-length"] == str(len(WAV))
        assert head_response.headers["content-type"] == "audio/wav"
        body = assert_error(
            await client.get(url, headers={"Range": "bytes=999999-"}), 416, "range_not_satisfiable"
        )
        assert body["size"] == len(WAV)

        # A link that expires soon gets a presigned URL that expires no later.
        soon = int(time.time()) + 30
        short = await client.get(local(store.signed_url(job_id, "result-1.wav", soon)))
        assert short.status_code == 307
        assert int(parse_qs(urlsplit(short.headers["location"]).query)["X-Amz-Expires"][0]) <= 30

        tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
        assert_error(await client.get(tampered), 403, "forbidden")
        expired = local(store.signed_url(job_id, "result-1.wav", int(time.time()) - 1))
        assert_error(await client.get(expired), 410, "expired")
        unknown = local(store.signed_url(job_id, "result-9.wav", expires))
        assert_error(await client.get(unknown), 404, "not_found")

        await expire_results(app, job_id)
        assert await store.sweep(app.state.services.db) == 1
        assert s3_client().list_objects_v2(Bucket=s3_bucket, Prefix=f"results/{job_id}/")["KeyCount"] == 0
        assert_error(await client.get(url), 404, "not_found")
        assert await job_store.results_past(app.state.services.db, "2999-01-01T00:00:00Z") == []


async def test_s3_rejected_download_stores_nothing(tmp_path: Path, s3_bucket: str, upstream: str) -> None:
    settings = make_settings(tmp_path, storage_url=f"s3://{s3_bucket}", max_result_bytes=100)
    async with running(settings) as (app, _):
        store = results(app)
        with pytest.raises(MirrorError, match="not audio, video or image"):
            await store.mirror("job_x", [f"{upstream}/page.html"], int(time.time()) + 60, trusted=[upstream])
        with pytest.raises(MirrorError, match="larger than 100 bytes"):
            await store.mirror("job_x", [f"{upstream}/out.wav"], int(time.time()) + 60, trusted=[upstream])
        assert s3_client().list_objects_v2(Bucket=s3_bucket)["KeyCount"] == 0
        assert list((settings.data_dir / "staging").iterdir()) == []
        assert not await store.storage.exists("job_x", "result-1.wav")


async def test_s3_failures_fail_the_mirror_and_leave_no_orphans(
    tmp_path: Path, s3_bucket: str, upstream: str
) -> None:
    settings = make_settings(tmp_path, storage_url=f"s3://{s3_bucket}/p")
    async with running(settings) as (app, _):
        store = results(app)
        # The first output is stored, the second is refused: the job fails, so the first goes too.
        with pytest.raises(MirrorError, match="not audio"):
            await store.mirror(
                "job_y",
                [f"{upstream}/out.wav", f"{upstream}/page.html"],
                int(time.time()) + 60,
                trusted=[upstream],
            )
        assert s3_client().list_objects_v2(Bucket=s3_bucket)["KeyCount"] == 0
    missing = make_settings(tmp_path, storage_url="s3://no-such-bucket-here/p")
    async with running(missing) as (app, _):
        with pytest.raises(MirrorError, match="storing the result failed"):
            await results(app).mirror(
                "job_z", [f"{upstream}/out.wav"], int(time.time()) + 60, trusted=[upstream]
            )
        assert list((missing.data_dir / "staging").iterdir()) == []


async def test_folder_put_across_filesystems_copies_then_renames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace
    renamed: list[str] = []

    def replace(source: Any, target: Any) -> None:
        # The staging dir and a shared volume are different filesystems: rename(2) says EXDEV.
        if Path(source).parent == tmp_path / "staging":
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        renamed.append(Path(source).name)
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    (tmp_path / "staging").mkdir()
    source = tmp_path / "staging" / "download.part"
    source.write_bytes(WAV)
    storage = FolderStorage(tmp_path / "volume")
    await storage.put("job_1", "result-1.wav", source, "audio/wav")
    assert (tmp_path / "volume" / "job_1" / "result-1.wav").read_bytes() == WAV
    assert renamed == [".result-1.wav.part"] and await storage.exists("job_1", "result-1.wav")
    assert sorted(p.name for p in (tmp_path / "volume" / "job_1").iterdir()) == ["result-1.wav"]
