"""ChatVLMLLM from a terminal: the same services the pages use.

    python cli.py config check [FILE]
    python cli.py cache stats|clear [--config FILE]
    python cli.py ocr [--engine ID] [--template NAME] [--format text|markdown|json] FILE...
    python cli.py chat [--model ID] [--image FILE]... "question"
    python cli.py models list|status [--json] | models download ID
    python cli.py bench run|list|show|compare|rescore|rename|delete|sample ...
    python cli.py auth init|check|adopt ...   (sign-in: secrets, listen address, upgrade)
    python cli.py users list | audit [--limit N]
    python cli.py monitor [--once]            (server metrics and alerts, beside the app)

Every command acts for the local operator (full trust, as before sign-in existed);
``--user WHO`` (user id or e-mail of someone who signed in) acts as that user, with
their data and the role the profile gives them.

Exit status 0 on success, 1 when the command failed (the message says why),
2 for a usage error, a refusal (the user's role may not do it) or an unsafe
listen address (`auth check`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

import yaml

from cli_commands.acting import Acting, acting_as
from models.config import LoadedConfig, load_config
from utils.auth import Action, PermissionDenied
from utils.errors import AppError


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except PermissionDenied as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cli.py", description=__doc__.splitlines()[0])
    parser.add_argument("--user", metavar="WHO", default=None, help=_USER_HELP)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    _add_config_commands(commands)
    _add_cache_commands(commands)
    _add_ocr_command(commands)
    _add_chat_command(commands)
    _add_models_commands(commands)
    _add_bench_commands(commands)
    _add_auth_commands(commands)
    _add_users_commands(commands)
    _add_monitor_command(commands)
    return parser


_USER_HELP = "act as this user (user id or e-mail; see `users list`), not the local operator"


def _profile_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", help="profile to use (default: $CHATVLM_CONFIG, else config.yaml)"
    )


def _acting_options(parser: argparse.ArgumentParser) -> None:
    """--config, and --user also after the command (SUPPRESS: keeps a global --user)."""
    _profile_option(parser)
    parser.add_argument("--user", metavar="WHO", default=argparse.SUPPRESS, help=_USER_HELP)


def _add_config_commands(commands: argparse._SubParsersAction) -> None:
    config = commands.add_parser("config", help="inspect profiles")
    sub = config.add_subparsers(required=True, metavar="ACTION")
    check = sub.add_parser("check", help="validate a profile and print it resolved")
    check.add_argument("file", nargs="?", help="profile (default: the active one)")
    check.set_defaults(handler=cmd_config_check)


def _add_cache_commands(commands: argparse._SubParsersAction) -> None:
    cache = commands.add_parser("cache", help="the result cache under cache/")
    sub = cache.add_subparsers(required=True, metavar="ACTION")
    stats = sub.add_parser("stats", help="entries, size, hits and misses")
    _acting_options(stats)
    stats.set_defaults(handler=cmd_cache_stats)
    clear = sub.add_parser("clear", help="delete every cached entry")
    _acting_options(clear)
    clear.set_defaults(handler=cmd_cache_clear)


def _add_ocr_command(commands: argparse._SubParsersAction) -> None:
    ocr = commands.add_parser("ocr", help="read text (and fields) from images and PDFs")
    ocr.add_argument("files", nargs="+", metavar="FILE")
    ocr.add_argument("--engine", help="catalog id of the OCR engine (default: the profile's)")
    ocr.add_argument("--template", help="document template for fields (receipt, invoice, ...)")
    ocr.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    ocr.add_argument("--deskew", action="store_true", help="straighten slightly rotated scans")
    ocr.add_argument(
        "--auto-rotate", action="store_true", help="turn sideways or upside-down pages upright"
    )
    ocr.add_argument(
        "--preset",
        choices=["text", "markdown", "table"],
        default=None,
        help="what a VLM engine is asked for (default: markdown for --format markdown)",
    )
    ocr.add_argument(
        "--fields-per",
        choices=["document", "page"],
        default="document",
        help="with --template: one record of fields per file (default), or one per page "
        "(a PDF of several receipts)",
    )
    ocr.add_argument(
        "--characters",
        choices=["ascii", "all"],
        default=None,
        help="what RapidOCR may write: ascii (English, Malay) or all (accents, other "
        "scripts); default: the profile's ocr.rapidocr.characters",
    )
    ocr.add_argument("--no-cache", action="store_true", help="neither read nor write cache/")
    _acting_options(ocr)
    ocr.set_defaults(handler=cmd_ocr)


def _add_chat_command(commands: argparse._SubParsersAction) -> None:
    chat = commands.add_parser("chat", help="ask a vision-language model about images")
    chat.add_argument("question")
    chat.add_argument("--model", help="catalog id of a chat model (default: first chat model)")
    chat.add_argument("--image", action="append", default=[], metavar="FILE", help="repeatable")
    chat.add_argument("--system", default="", help="system prompt")
    own = "default: the conversation's, for a new one the model's own in the profile"
    chat.add_argument("--max-tokens", type=int, help=own)
    chat.add_argument("--temperature", type=float, help=own)
    chat.add_argument("--top-p", type=float, help=own)
    chat.add_argument("--conversation", help="continue this saved conversation")
    _acting_options(chat)
    chat.set_defaults(handler=cmd_chat)


def _add_models_commands(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="the model catalog")
    sub = models.add_subparsers(required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="every catalog entry and whether it can run here")
    listing.add_argument("--json", action="store_true")
    _acting_options(listing)
    listing.set_defaults(handler=cmd_models_list)
    status = sub.add_parser(
        "status", help="check every entry and write results/model_status.json (+ history)"
    )
    status.add_argument("--json", action="store_true")
    _acting_options(status)
    status.set_defaults(handler=cmd_models_status)
    download = sub.add_parser("download", help="fetch a model into the Hugging Face cache")
    download.add_argument("model", help="catalog id or Hugging Face repo id")
    _acting_options(download)
    download.set_defaults(handler=cmd_models_download)


def _add_bench_commands(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="benchmark OCR engines on a labelled set")
    sub = bench.add_subparsers(required=True, metavar="ACTION", dest="bench_action")
    run = sub.add_parser("run", help="run (or, with an existing --run-id, resume) a benchmark")
    run.add_argument("--dataset", help="a folder, or 'builtin' (default: the profile's)")
    run.add_argument("--format", choices=["auto", "sroie", "pairs"], default="auto")
    run.add_argument(
        "--engine", action="append", metavar="NAME[,NAME]", help="engines (catalog ids)"
    )
    run.add_argument("--limit", type=int, help="only the first N items")
    run.add_argument("--run-id", help="resume this run (or start a new one with this id)")
    run.add_argument("--template", help="field template for every item (default: per item)")
    run.add_argument("--name", help="display name of a new run")
    run.add_argument("--json", action="store_true")
    listing = sub.add_parser("list", help="stored runs, newest first")
    listing.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="one run: settings, summary, failures")
    show.add_argument("run")
    show.add_argument("--json", action="store_true")
    show.add_argument("--items", action="store_true", help="with --json: every item record")
    compare = sub.add_parser("compare", help="runs side by side, deltas against the first")
    compare.add_argument("runs", nargs="+", metavar="RUN")
    compare.add_argument("--json", action="store_true")
    rescore = sub.add_parser("rescore", help="recompute metrics from saved predictions")
    rescore.add_argument("run")
    rescore.add_argument("--json", action="store_true")
    rename = sub.add_parser("rename", help="give a run a new display name")
    rename.add_argument("run")
    rename.add_argument("name")
    delete = sub.add_parser("delete", help="delete a run and its records")
    delete.add_argument("run")
    sample = sub.add_parser("sample", help="write the built-in labelled set to a folder")
    sample.add_argument("folder", metavar="DIR")
    for action in (run, listing, show, compare, rescore, rename, delete, sample):
        _acting_options(action)
        action.set_defaults(handler=cmd_bench)


def _add_auth_commands(commands: argparse._SubParsersAction) -> None:
    auth = commands.add_parser("auth", help="sign-in: secrets, listen address, upgrade")
    sub = auth.add_subparsers(required=True, metavar="ACTION")
    init = sub.add_parser("init", help="write the [auth] section of .streamlit/secrets.toml")
    init.add_argument("--client-id", required=True, help="the app's client id at the provider")
    init.add_argument(
        "--server-metadata-url",
        required=True,
        metavar="URL",
        help="the provider's .well-known/openid-configuration URL",
    )
    init.add_argument(
        "--redirect-uri", required=True, metavar="URL", help="http(s)://HOST:PORT/oauth2callback"
    )
    init.add_argument(
        "--client-secret-env",
        default="CHATVLM_OIDC_CLIENT_SECRET",
        metavar="VAR",
        help="environment variable holding the client secret (default: %(default)s; "
        "unset: asked for on a terminal)",
    )
    init.add_argument(
        "--secrets-file", metavar="PATH", help="default: .streamlit/secrets.toml of the app"
    )
    init.add_argument("--force", action="store_true", help="replace an existing [auth]")
    init.set_defaults(handler=cmd_auth_init)
    check = sub.add_parser("check", help="refuse an unsafe listen address (exit 2)")
    check.add_argument(
        "--address", help="the address Streamlit will listen on (default: all interfaces)"
    )
    _profile_option(check)
    check.set_defaults(handler=cmd_auth_check)
    adopt = sub.add_parser("adopt", help="give the single-user data to a user who signed in")
    adopt.add_argument("--user", metavar="WHO", required=True, help="user id or e-mail")
    _profile_option(adopt)
    adopt.set_defaults(handler=cmd_auth_adopt)


def _add_users_commands(commands: argparse._SubParsersAction) -> None:
    users = commands.add_parser("users", help="people who signed in")
    sub = users.add_subparsers(required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="id, e-mail or name, role today, last seen")
    _acting_options(listing)
    listing.set_defaults(handler=cmd_users_list)
    audit = commands.add_parser("audit", help="recent audit log entries, newest first")
    audit.add_argument("--limit", type=_positive_int, default=50, help="default: %(default)s")
    _acting_options(audit)
    audit.set_defaults(handler=cmd_audit)


def _add_monitor_command(commands: argparse._SubParsersAction) -> None:
    monitor = commands.add_parser(
        "monitor", help="poll the model servers and apply the alert rules (cron, sidecar)"
    )
    monitor.add_argument("--once", action="store_true", help="poll once and exit (cron)")
    _acting_options(monitor)
    monitor.set_defaults(handler=cmd_monitor)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def cmd_config_check(args: argparse.Namespace) -> int:
    loaded = load_config(args.file)
    chain = " <- ".join(str(p) for p in loaded.chain)
    print(f"# profile: {chain}\n# sha256: {loaded.sha256}")
    resolved = loaded.config.model_dump(mode="json")
    print(yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True), end="")
    return 0


def _open_cache(loaded: LoadedConfig):
    from utils.cache import open_cache

    return open_cache(loaded.config.cache_dir, loaded.config.cache)


def _acting(args: argparse.Namespace, action: Action | None = None) -> Acting:
    """Who this command acts for; ``PermissionDenied`` unless they may ``action``."""
    acting = acting_as(args)
    if action is not None:
        acting.check(action)
    return acting


def cmd_cache_stats(args: argparse.Namespace) -> int:
    stats = _open_cache(_acting(args).loaded).stats()
    print(json.dumps(stats.model_dump(mode="json"), indent=2))
    return 0


def cmd_cache_clear(args: argparse.Namespace) -> int:
    from utils.system.admin import clear_cache

    acting = _acting(args)
    removed = clear_cache(_open_cache(acting.loaded), acting.config, acting.user)
    print(f"removed {removed} cached entries")
    return 0


def cmd_ocr(args: argparse.Namespace) -> int:
    from cli_commands.ocr import run_ocr_command

    return run_ocr_command(args, _acting(args, Action.RUN_OCR).config)


def cmd_chat(args: argparse.Namespace) -> int:
    from cli_commands.chat import run_chat_command

    acting = _acting(args, Action.CHAT)
    return run_chat_command(args, acting.config, acting.user)


def cmd_models_list(args: argparse.Namespace) -> int:
    from cli_commands.models import run_models_list

    return run_models_list(args, _acting(args, Action.CHECK_STATUS).config)


def cmd_models_status(args: argparse.Namespace) -> int:
    from cli_commands.models import run_models_status

    return run_models_status(args, _acting(args))


def cmd_models_download(args: argparse.Namespace) -> int:
    from cli_commands.models import run_models_download

    return run_models_download(args, _acting(args, Action.MANAGE_MODELS).config)


def cmd_bench(args: argparse.Namespace) -> int:
    from cli_commands.bench import run_bench_command

    return run_bench_command(args, _acting(args))


def cmd_auth_init(args: argparse.Namespace) -> int:
    from cli_commands.auth import run_auth_init

    return run_auth_init(args)


def cmd_auth_check(args: argparse.Namespace) -> int:
    from cli_commands.auth import run_auth_check

    return run_auth_check(args)


def cmd_auth_adopt(args: argparse.Namespace) -> int:
    from cli_commands.auth import run_auth_adopt

    return run_auth_adopt(args)


def cmd_users_list(args: argparse.Namespace) -> int:
    from cli_commands.users import run_users_list

    return run_users_list(args)


def cmd_audit(args: argparse.Namespace) -> int:
    from cli_commands.users import run_audit

    return run_audit(args)


def cmd_monitor(args: argparse.Namespace) -> int:
    from cli_commands.monitor import run_monitor

    return run_monitor(args)


if __name__ == "__main__":
    sys.exit(main())
