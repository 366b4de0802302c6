"""`tailrace logs ARGS`: parse, connect, read or follow, and turn failures into exit codes."""

from __future__ import annotations

import logging
import os
import sys

from tailrace.logs_client import api, connection, failures, following, options, reading, rendering


def main(argv: list[str]) -> int:
    # The CLI sets up INFO logging for the server roles; a client's stderr is for its own words.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        opts = options.parse(argv)
        conn = connection.resolve(opts)
    except failures.ClientFailure as err:
        print(f"tailrace logs: {err.message}", file=sys.stderr)
        return err.exit_code
    except SystemExit as exit_:  # argparse: --help, or a usage error already printed
        return exit_.code if isinstance(exit_.code, int) else failures.EXIT_USAGE
    prefix = opts.prefix if opts.prefix is not None else not opts.target.is_pod
    renderer = rendering.Renderer(
        opts.output,
        sys.stdout,
        colour=rendering.wants_colour(opts.colour, sys.stdout),
        timestamps=opts.timestamps,
        prefix=prefix,
        terminal=rendering.is_terminal(sys.stdout),
    )
    try:
        with api.client(conn) as client:
            if opts.follow:
                following.Follower(client, conn, opts, renderer).run()
            else:
                reading.read(client, conn, opts, renderer)
            renderer.flush()
    except failures.ClientFailure as err:
        print(f"tailrace logs: {err.message}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:
        # `tailrace logs ... | head`: the reader is gone, which is not an error. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return 0
