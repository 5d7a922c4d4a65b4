"""A throwaway nginx main config around one site file, kept in a test's temporary folder."""

from __future__ import annotations

from pathlib import Path


def write_nginx_conf(folder: Path, site: str, *, foreground: bool = False) -> Path:
    """`folder/nginx.conf` including `site`, with its pid, logs and temp paths all inside `folder`."""
    (folder / "site.conf").write_text(site)
    temp_paths = "".join(
        f"    {kind}_temp_path {folder / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = folder / "nginx.conf"
    main.write_text(
        f"pid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'error.log'};\n"
        + ("daemon off;\nworker_processes 1;\n" if foreground else "")
        + "events {}\n"
        "http {\n"
        "    access_log off;\n"
        f"{temp_paths}"
        f"    include {folder / 'site.conf'};\n"
        "}\n"
    )
    return main
