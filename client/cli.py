"""The ``cairn`` command: objects and buckets for people, a local cluster, one node.

::

    cairn cluster up [--nodes 3] [--data ./cairn-data]      a local cluster, foreground
    cairn node [--config FILE] ...                          one node (cairn.node.main)
    cairn mb|rb BUCKET          cairn ls [BUCKET[/PREFIX]]
    cairn put BUCKET/KEY FILE|-  cairn get BUCKET/KEY [-o FILE]
    cairn stat BUCKET/KEY        cairn rm BUCKET/KEY...
    cairn admin status|scrub|repair

Every error is one line on stderr, ``cairn: error: <message>``, and a distinct exit code
(``_cli_support.EXIT_*``; docs/cli.md lists them). Set ``CAIRN_DEBUG=1`` to see the
traceback of an unexpected error.

The object commands go through the SDK (``cairn.Client``), like any application. The
node and the launcher are imported only by the commands that run them, so the object
commands work with the client install alone (``pip install cairnstore``).

Entry point: ``main()`` (``[project.scripts] cairn``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import click

from cairn import _cli_admin, _cli_cluster
from cairn._cli_support import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Target,
    describe_error,
    exit_code_for,
    format_bytes,
    format_ms,
    format_rate,
    make_progress,
    one_line,
    parse_rate,
    parse_target,
)
from cairn.errors import CairnError

__all__ = ["cli", "main", "run"]

DEFAULT_SEEDS: Final = "127.0.0.1:7101"
SEEDS_ENV: Final = "CAIRN_SEEDS"
CONSISTENCY_ENV: Final = "CAIRN_CONSISTENCY"
TIMEOUT_ENV: Final = "CAIRN_TIMEOUT"
DEBUG_ENV: Final = "CAIRN_DEBUG"
NODE_EXTRA_MODULES: Final = frozenset(
    {
        "lmdb",
        "crc32c",
        "aiofiles",
        "boto3",
        "botocore",
        "prometheus_client",
        "grpc_health",
        "uvloop",
        "psutil",
        "google_crc32c",
    }
)
"""Modules that only ``pip install 'cairnstore[node]'`` brings."""

CONTEXT: Final = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@dataclass(frozen=True, slots=True)
class Settings:
    """How the object commands reach the cluster (global flags, then per-command flags)."""

    seeds: str = DEFAULT_SEEDS
    consistency: str | None = None
    timeout_s: float | None = None

    def seed_list(self) -> list[str]:
        seeds = [s.strip() for s in self.seeds.split(",") if s.strip()]
        if not seeds:
            raise CliError("--seeds is empty: give host:port[,host:port...]", EXIT_USAGE)
        return seeds


def _client_options(fn: Any) -> Any:
    """--seeds, --consistency, --timeout: on the group and again on each object command."""
    fn = click.option(
        "--timeout",
        "timeout_s",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        metavar="SECONDS",
        help=f"Deadline of each call (default: the SDK's). Env: {TIMEOUT_ENV}.",
    )(fn)
    fn = click.option(
        "--consistency",
        type=click.Choice(["one", "quorum", "all"]),
        default=None,
        help="Replicas that must answer: one, quorum (W or R, the default) or all (N). "
        f"Env: {CONSISTENCY_ENV}.",
    )(fn)
    return click.option(
        "--seeds",
        default=None,
        metavar="HOST:PORT[,...]",
        help=f"Nodes to ask for the cluster map. Env: {SEEDS_ENV}; default {DEFAULT_SEEDS}.",
    )(fn)


def _settings(
    ctx: click.Context, seeds: str | None, consistency: str | None, timeout_s: float | None
) -> Settings:
    base: Settings = ctx.find_object(Settings) or Settings()
    return Settings(
        seeds=seeds or base.seeds,
        consistency=consistency or base.consistency,
        timeout_s=timeout_s if timeout_s is not None else base.timeout_s,
    )


@contextlib.contextmanager
def _errors(settings: Settings, target: Target | None = None) -> Iterator[None]:
    """Turn cairn errors into one line (with the bucket, key and seeds) and an exit code."""
    try:
        yield
    except CairnError as exc:
        raise CliError(
            describe_error(
                exc,
                bucket=target.bucket if target else None,
                key=target.key if target else None,
                seeds=settings.seeds,
            ),
            exit_code_for(exc),
        ) from exc


@contextlib.contextmanager
def _client(settings: Settings) -> Iterator[Any]:
    """A ``cairn.Client`` for the settings, closed on exit."""
    import cairn

    kwargs: dict[str, Any] = {}
    if settings.timeout_s is not None:
        kwargs["timeout"] = settings.timeout_s
    if settings.consistency is not None:
        kwargs["consistency"] = settings.consistency
    with _errors(settings):
        client = cairn.Client(settings.seed_list(), **kwargs)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()


# ------------------------------------------------------------------------ the group


class _Group(click.Group):
    """Lists commands in the order they are defined, not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=_Group, context_settings=CONTEXT, invoke_without_command=True)
@click.version_option(package_name="cairnstore", prog_name="cairn")
@click.option(
    "--seeds",
    envvar=SEEDS_ENV,
    default=DEFAULT_SEEDS,
    show_default=True,
    metavar="HOST:PORT[,...]",
    help=f"Nodes to ask for the cluster map (env {SEEDS_ENV}).",
)
@click.option(
    "--consistency",
    envvar=CONSISTENCY_ENV,
    type=click.Choice(["one", "quorum", "all"]),
    default=None,
    help=f"Replicas that must answer (env {CONSISTENCY_ENV}).",
)
@click.option(
    "--timeout",
    "timeout_s",
    envvar=TIMEOUT_ENV,
    metavar="SECONDS",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help=f"Deadline of each call (env {TIMEOUT_ENV}).",
)
@click.pass_context
def cli(ctx: click.Context, seeds: str, consistency: str | None, timeout_s: float | None) -> None:
    """cairn: a distributed, replicated object store.

    Start a local cluster with `cairn cluster up`, then, in another terminal:
    `cairn mb photos`, `cairn put photos/cat.jpg cat.jpg`, `cairn ls photos`.
    """
    ctx.obj = Settings(seeds=seeds, consistency=consistency, timeout_s=timeout_s)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


# -------------------------------------------------------------------- buckets


@cli.command("mb", context_settings=CONTEXT)
@click.argument("bucket")
@_client_options
@click.pass_context
def make_bucket(ctx: click.Context, /, bucket: str, **opts: Any) -> None:
    """Make a bucket."""
    settings = _settings(ctx, **opts)
    target = parse_target(bucket, need_key=False)
    if target.key:
        raise CliError(f"'{bucket}': a bucket name has no '/'", EXIT_USAGE)
    with _client(settings) as client, _errors(settings, target):
        client.create_bucket(target.bucket)
    click.echo(f"made bucket {target.bucket}")


@cli.command("rb", context_settings=CONTEXT)
@click.argument("bucket")
@click.option("--force", is_flag=True, help="Delete every object of the bucket first.")
@_client_options
@click.pass_context
def remove_bucket(ctx: click.Context, /, bucket: str, force: bool, **opts: Any) -> None:
    """Remove a bucket (empty, or --force)."""
    settings = _settings(ctx, **opts)
    target = parse_target(bucket, need_key=False)
    if target.key:
        raise CliError(f"'{bucket}': a bucket name has no '/'", EXIT_USAGE)
    with _client(settings) as client, _errors(settings, target):
        if force:
            keys = [info.key for info in client.list(target.bucket)]
            for key in keys:
                client.delete(target.bucket, key)
        client.delete_bucket(target.bucket)
    click.echo(f"removed bucket {target.bucket}")


# -------------------------------------------------------------------- objects


@cli.command("put", context_settings=CONTEXT)
@click.argument("target", metavar="BUCKET/KEY")
@click.argument(
    "source", metavar="FILE|-", type=click.Path(exists=True, dir_okay=False, allow_dash=True)
)
@click.option(
    "--codec",
    default=None,
    metavar="NAME",
    help="Codec name recorded with the object (default raw): e.g. json or text, "
    "so that an SDK get() decodes it.",
)
@click.option(
    "--meta",
    "metadata",
    multiple=True,
    metavar="NAME=VALUE",
    help="User metadata; repeat for more.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: for large files, on a terminal).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@_client_options
@click.pass_context
def put(
    ctx: click.Context,
    /,
    target: str,
    source: str,
    codec: str | None,
    metadata: tuple[str, ...],
    progress: bool | None,
    quiet: bool,
    **opts: Any,
) -> None:
    """Store a file, or standard input (-), as an object.

    The key is everything after the first '/', so it may hold more '/'.
    """
    settings = _settings(ctx, **opts)
    where = parse_target(target, need_key=True)
    kwargs: dict[str, Any] = {}
    if codec is not None:
        kwargs["codec"] = codec
    if metadata:
        kwargs["metadata"] = _parse_metadata(metadata)
    callback, close = make_progress(str(where), progress)
    if callback is not None:
        kwargs["progress"] = callback
    source_file: Any = sys.stdin.buffer if source == "-" else source
    try:
        with _client(settings) as client, _errors(settings, where):
            info = client.upload(where.bucket, where.key, source_file, **kwargs)
    finally:
        close()
    if not quiet:
        click.echo(_put_summary(where, info))


def _parse_metadata(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--meta '{pair}' is not NAME=VALUE", EXIT_USAGE)
        out[name] = value
    return out


def _put_summary(where: Target, info: Any) -> str:
    size = getattr(info, "size", None)
    version = getattr(info, "version", None)
    parts = [f"put {where}"]
    if size is not None:
        parts.append(f"{size} bytes")
    if version is not None:
        parts.append(f"version {version}")
    return ", ".join(parts)


@cli.command("get", context_settings=CONTEXT)
@click.argument("target", metavar="BUCKET/KEY")
@click.option(
    "-o",
    "--output",
    default="-",
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write to FILE (replaced only once every byte is verified); default: standard output.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: for large objects, on a terminal).",
)
@_client_options
@click.pass_context
def get(
    ctx: click.Context, /, target: str, output: str, progress: bool | None, **opts: Any
) -> None:
    """Write an object to standard output or a file.

    The bytes come out as stored (binary safe); with -o FILE, FILE is replaced only
    once every byte arrived and its checksum matched.
    """
    settings = _settings(ctx, **opts)
    where = parse_target(target, need_key=True)
    kwargs: dict[str, Any] = {}
    callback, close = make_progress(str(where), progress)
    if callback is not None:
        kwargs["progress"] = callback
    sink: Any = output
    if output == "-":
        sys.stdout.flush()
        sink = sys.stdout.buffer
    try:
        with _client(settings) as client, _errors(settings, where):
            client.download(where.bucket, where.key, sink, **kwargs)
        if output == "-":
            sink.flush()
    finally:
        close()


@cli.command("rm", context_settings=CONTEXT)
@click.argument("targets", metavar="BUCKET/KEY...", nargs=-1, required=True)
@_client_options
@click.pass_context
def remove(ctx: click.Context, /, targets: tuple[str, ...], **opts: Any) -> None:
    """Delete objects. Deleting an object that does not exist succeeds."""
    settings = _settings(ctx, **opts)
    wheres = [parse_target(t, need_key=True) for t in targets]
    with _client(settings) as client:
        for where in wheres:
            with _errors(settings, where):
                client.delete(where.bucket, where.key)


@cli.command("ls", context_settings=CONTEXT)
@click.argument("target", metavar="[BUCKET[/PREFIX]]", required=False)
@click.option(
    "-l", "--long", "long_", is_flag=True, help="Also show size, modification time and codec."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@_client_options
@click.pass_context
def list_(
    ctx: click.Context, /, target: str | None, long_: bool, as_json: bool, **opts: Any
) -> None:
    """List buckets, or the keys of a bucket.

    With BUCKET/PREFIX, only the keys that start with PREFIX, in byte order.
    """
    settings = _settings(ctx, **opts)
    if target is None:
        with _client(settings) as client, _errors(settings):
            for bucket in client.list_buckets():
                _echo_bucket(bucket, long_=long_, as_json=as_json)
        return
    where = parse_target(target, need_key=False)
    with _client(settings) as client, _errors(settings, Target(where.bucket, None)):
        for info in client.list(where.bucket, prefix=where.key or ""):
            _echo_object(info, long_=long_, as_json=as_json)


def _echo_bucket(bucket: Any, *, long_: bool, as_json: bool) -> None:
    # The SDK gives bucket names; a richer value (name, created_ms) prints its time too.
    name = getattr(bucket, "name", bucket)
    created_ms = getattr(bucket, "created_ms", None)
    if as_json:
        data = {"name": name} if created_ms is None else {"name": name, "created_ms": created_ms}
        click.echo(json.dumps(data))
    elif long_ and created_ms is not None:
        click.echo(f"{format_ms(created_ms):20}  {name}")
    else:
        click.echo(name)


def _echo_object(info: Any, *, long_: bool, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(_info_dict(info), sort_keys=True))
    elif long_:
        click.echo(
            f"{info.size:>12}  {format_ms(getattr(info, 'modified_ms', 0)):20}  "
            f"{getattr(info, 'codec', '') or 'raw':8}  {info.key}"
        )
    else:
        click.echo(info.key)


def _info_dict(info: Any) -> dict[str, Any]:
    checksum = getattr(info, "checksum", None)
    return {
        "bucket": getattr(info, "bucket", None),
        "key": info.key,
        "size": info.size,
        "version": str(getattr(info, "version", "")),
        "checksum": f"crc32c:{checksum:08x}" if isinstance(checksum, int) else checksum,
        "codec": getattr(info, "codec", "") or "raw",
        "metadata": dict(getattr(info, "metadata", {}) or {}),
        "tier": getattr(info, "tier", "") or "local",
        "modified_ms": getattr(info, "modified_ms", 0),
    }


def _size_text(size: int) -> str:
    return f"{size} bytes" if size < 1024 else f"{size} bytes ({format_bytes(size)})"


@cli.command("stat", context_settings=CONTEXT)
@click.argument("target", metavar="BUCKET/KEY")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_client_options
@click.pass_context
def stat(ctx: click.Context, /, target: str, as_json: bool, **opts: Any) -> None:
    """Show an object's size, version, checksum, codec, metadata, tier."""
    settings = _settings(ctx, **opts)
    where = parse_target(target, need_key=True)
    with _client(settings) as client, _errors(settings, where):
        info = client.head(where.bucket, where.key)
    data = _info_dict(info)
    data["bucket"] = data["bucket"] or where.bucket
    if as_json:
        click.echo(json.dumps(data, sort_keys=True))
        return
    meta = ", ".join(f"{k}={v}" for k, v in sorted(data["metadata"].items())) or "-"
    rows = [
        ("bucket", data["bucket"]),
        ("key", data["key"]),
        ("size", _size_text(data["size"])),
        ("version", data["version"]),
        ("checksum", data["checksum"]),
        ("codec", data["codec"]),
        ("metadata", meta),
        ("tier", data["tier"]),
        ("modified", format_ms(data["modified_ms"])),
    ]
    for name, value in rows:
        click.echo(f"{name + ':':10} {value}")


# ---------------------------------------------------------------------- admin


@cli.group("admin", cls=_Group, context_settings=CONTEXT, invoke_without_command=True)
@click.pass_context
def admin(ctx: click.Context) -> None:
    """Operator commands: the state of the cluster."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@admin.command("status", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_client_options
@click.pass_context
def admin_status(ctx: click.Context, /, as_json: bool, **opts: Any) -> None:
    """Show every node of the cluster map: health, repair, disks, objects, hints.

    Exits 4 (unavailable) when a node cannot be reached or a disk is not ok.
    """
    settings = _settings(ctx, **opts)
    with _client(settings) as client, _errors(settings):
        report = _cli_admin.collect(client)
    if as_json:
        click.echo(json.dumps(report.to_dict(), sort_keys=True))
    else:
        for line in report.lines():
            click.echo(line)
    problem = report.problem()
    if problem:
        raise CliError(problem, _cli_admin.EXIT_DEGRADED)


def _rate_option(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """``--rate``: bytes per second, ``1048576``, ``64MiB``, ``100M``, ``0``/``unlimited``.

    A callback rather than a ``click.ParamType`` subclass: that class is generic only
    from click 8.4 on, and cairn supports click 8.1.
    """
    if value is None:
        return None
    try:
        return parse_rate(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


_NODE_HELP: Final = "Only the node at this address (default: every node of the cluster map)."


@admin.command("scrub", context_settings=CONTEXT)
@click.option("--node", metavar="HOST:PORT", default=None, help=_NODE_HELP)
@_client_options
@click.pass_context
def admin_scrub(ctx: click.Context, /, node: str | None, **opts: Any) -> None:
    """Start a scrub pass now: verify every record, repair bad copies from replicas.

    Returns once each node has started its pass; `cairn admin status` shows its progress.
    """
    settings = _settings(ctx, **opts)
    with _client(settings) as client:
        with _errors(settings):
            nodes = _cli_admin.targets(client, node, None)

        def scrub(address: str) -> str:
            client.scrub(address)
            return "scrub pass started"

        _cli_admin.run_on(nodes, scrub, what="scrub", echo=click.echo)


@admin.command("repair", context_settings=CONTEXT)
@click.option("--node", metavar="HOST:PORT", default=None, help=_NODE_HELP)
@click.option(
    "--partition",
    type=click.IntRange(min=0),
    default=None,
    metavar="P",
    help="Only partition P, on the nodes that hold it (levelled before answering).",
)
@click.option(
    "--wait", is_flag=True, help="Wait until the pass has levelled everything; print what moved."
)
@click.option(
    "--rate",
    callback=_rate_option,
    default=None,
    metavar="BYTES_PER_S",
    help="Set the repair rate instead (bytes/s: 1048576, 64MiB, 100M; 0 = unlimited).",
)
@_client_options
@click.pass_context
def admin_repair(
    ctx: click.Context,
    /,
    node: str | None,
    partition: int | None,
    wait: bool,
    rate: int | None,
    **opts: Any,
) -> None:
    """Run anti-entropy now: copy what differs between replicas, both ways.

    Without --wait the pass runs in the background (`cairn admin status` shows it).
    With --rate, set the repair rate of the node(s) instead; it lasts until the node
    restarts.
    """
    settings = _settings(ctx, **opts)
    if rate is not None and (wait or partition is not None):
        raise CliError(
            "--rate sets the repair rate: give it without --wait or --partition", EXIT_USAGE
        )
    waits = wait or partition is not None
    timeout_s = settings.timeout_s
    if waits and timeout_s is None:
        timeout_s = _cli_admin.REPAIR_WAIT_TIMEOUT_S
    with _client(settings) as client:
        with _errors(settings):
            nodes = _cli_admin.targets(client, node, partition)

        def set_rate(address: str) -> str:
            assert rate is not None
            client.set_repair_rate(address, rate)
            return f"repair rate set to {format_rate(rate)}"

        def repair(address: str) -> str:
            result = client.repair(address, partition=partition, wait=waits, timeout=timeout_s)
            if not waits:
                return "anti-entropy pass started"
            text = _cli_admin.repair_summary(result, partition)
            with contextlib.suppress(CairnError):  # a nicety: the repair itself succeeded
                below = client.node_status(address).repair.partitions_below_redundancy
                if below:
                    text += f"; {below} partitions still below redundancy"
            return text

        if rate is not None:
            _cli_admin.run_on(nodes, set_rate, what="setting the repair rate", echo=click.echo)
        else:
            _cli_admin.run_on(nodes, repair, what="repair", echo=click.echo)


# ------------------------------------------------------- cluster and node


@cli.group("cluster", cls=_Group, context_settings=CONTEXT, invoke_without_command=True)
@click.pass_context
def cluster(ctx: click.Context) -> None:
    """Run a local cluster."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


cluster.add_command(_cli_cluster.up)


@cli.command(
    "node",
    context_settings={
        "ignore_unknown_options": True,
        "allow_extra_args": True,
        "help_option_names": [],
    },
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def node(args: tuple[str, ...]) -> None:
    """Run one storage node (see cairn node --help)."""
    try:
        # Imported by name at run time: the SDK package never imports cairn.node
        # statically (the layering contract); only this command dispatches to it.
        module = importlib.import_module("cairn.node")
        code = module.main(list(args))
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in NODE_EXTRA_MODULES:
            raise CliError(
                f"cairn node needs the node extras ({exc.name} is missing): "
                "pip install 'cairnstore[node]'",
                EXIT_ERROR,
            ) from None
        raise
    raise SystemExit(code)


# ----------------------------------------------------------------------- main


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="cairn", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.exceptions.Abort:
        _error_line("interrupted")
        return EXIT_INTERRUPTED
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _error_line(one_line(exc.format_message()) + hint)
        return EXIT_USAGE
    except click.ClickException as exc:  # e.g. a file click could not open
        _error_line(one_line(exc.format_message()))
        return EXIT_ERROR
    except CliError as exc:
        _error_line(one_line(exc.message))
        return exc.exit_code
    except CairnError as exc:
        _error_line(one_line(str(exc)))
        return exit_code_for(exc)
    except KeyboardInterrupt:
        _error_line("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `cairn get b/k | head`: the reader left. Not an error worth a line; stop
        # Python from complaining again when it flushes stdout at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else 1)
    except OSError as exc:
        name = f"{exc.filename}: " if exc.filename else ""
        _error_line(one_line(f"{name}{exc.strerror or exc}"))
        return EXIT_ERROR
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        _error_line(
            one_line(f"internal error: {type(exc).__name__}: {exc}")
            + f" (set {DEBUG_ENV}=1 for the traceback; please report it)"
        )
        return EXIT_ERROR
    return int(result) if isinstance(result, int) else EXIT_OK


def _error_line(message: str) -> None:
    with contextlib.suppress(OSError):
        sys.stderr.write(f"cairn: error: {message}\n")
        sys.stderr.flush()


def main() -> NoReturn:
    """The ``cairn`` console script."""
    sys.exit(run())


if __name__ == "__main__":
    main()
