"""The folder engine: results as files under one directory (the data dir's, or a volume replicas share)."""

from __future__ import annotations

import errno
import mimetypes
import os
import shutil
import stat
from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

from gateway.contract.errors import NotFound
from gateway.storage.http import check_range

PREVIEW_PREFIX = "preview."  # gateway/results/previews.py names a job's latest frame preview.png or .jpg


class ResultFile(FileResponse):
    """A FileResponse that can be told to serve the whole file whatever Range the client sent."""

    def __init__(self, *args: object, ignore_range: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.ignore_range = ignore_range

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.ignore_range:
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"range"]
            scope = {**scope, "headers": headers}
        try:
            await super().__call__(scope, receive, send)
        except RuntimeError:
            # Deleted between the check and the answer (a sweep, or a failed job's preview going):
            # the file response stats it again before it starts and raises; answer as if never there.
            if await anyio.Path(self.path).exists():
                raise
            gone = NotFound("No such result (it may have been deleted after its retention period).")
            await JSONResponse(gone.body(), status_code=gone.status_code)(scope, receive, send)


class FolderStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, job_id: str, name: str) -> Path:
        return self.root / job_id / name

    async def put(self, job_id: str, name: str, source: Path, content_type: str) -> None:
        # The extension already says the type (FileResponse guesses it back), so content_type is unused.
        await anyio.to_thread.run_sync(self._put, job_id, name, source)

    def _put(self, job_id: str, name: str, source: Path) -> None:
        folder = self.root / job_id
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        try:
            os.replace(source, target)
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        # Another filesystem (a shared volume): copy beside the target, then rename, so that a replica
        # never serves half a file. The dot keeps the partial file out of reach of any signed name.
        partial = folder / f".{name}.part"
        shutil.copyfile(source, partial)
        os.replace(partial, target)

    async def exists(self, job_id: str, name: str) -> bool:
        return await anyio.Path(self.path(job_id, name)).is_file()

    async def serve(self, request: Request, job_id: str, name: str, expires: int) -> Response:
        path = self.path(job_id, name)
        if name.startswith(PREVIEW_PREFIX):
            # A live preview is replaced every few seconds and removed when its job fails: read whole
            # (it is small), so its length and its bytes come from the same file.
            try:
                data = await anyio.Path(path).read_bytes()
            except OSError:
                raise NotFound("No preview (the job has none, or it ended without results).") from None
            media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            return Response(data, media_type=media_type, headers={"Cache-Control": "no-store"})
        try:
            info = await anyio.Path(path).stat()
        except OSError:
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            raise NotFound("No such result (it may have been deleted after its retention period).")
        verdict = check_range(request.headers.get("range"), info.st_size)
        return ResultFile(  # stat once: a file removed meanwhile is not a 500 from a second stat
            path,
            filename=name,
            content_disposition_type="inline",
            ignore_range=verdict == "ignore",
            stat_result=info,
        )

    async def delete(self, job_id: str) -> None:
        folder = self.root / job_id
        if folder.is_dir():
            await anyio.to_thread.run_sync(shutil.rmtree, folder, True)

    async def aclose(self) -> None:
        pass
