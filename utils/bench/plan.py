"""Planning a benchmark run: a request checked and turned into a manifest, the dataset
and the engines to run, for a new run or a stored one being resumed.

Everything here runs before the runner writes anything, so a request that cannot
run (unknown engine, template or dataset; a resume whose dataset, templates or
engines changed since the run started) is refused with nothing on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.config import AppConfig, LoadedConfig
from utils.auth import LOCAL_USER, User
from utils.bench import store
from utils.bench.datasets import Dataset, LabelledItem, builtin_dataset, load_dataset
from utils.bench.engines import BenchEngine, EngineFactory, engine_info
from utils.bench.environment import hardware_info, package_versions
from utils.bench.records import DatasetInfo, Manifest
from utils.bench.scoring import BOOTSTRAP_SEED
from utils.errors import BadInput
from utils.storage import new_run_id, utc_now_iso


class BenchRequest(BaseModel):
    """What to run. On resume (``run_id`` of a stored run) every other field may be left
    out; any that is given must match the stored run."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(None, description='"builtin" or a folder; default: profile')
    format: Literal["auto", "sroie", "pairs"] = "auto"
    engines: list[str] = Field(default_factory=list)
    limit: int | None = Field(None, ge=1)
    template: str | None = None
    run_id: str | None = None
    name: str | None = None
    within_dataset_roots: bool = Field(
        False,
        description="a new run's dataset folder must lie inside the profile's "
        "benchmark.dataset_roots: set by the web page, whose users may not read every folder "
        "the server can (a resume reads the folder its run was started on)",
    )


def builtin_root(config: AppConfig) -> Path:
    """Where the built-in sample set is written (once) and read from."""
    return config.data_dir / "datasets" / "builtin"


def dataset_roots(config: AppConfig) -> list[Path]:
    """The folders the web page may read datasets from (``benchmark.dataset_roots``)."""
    roots = config.benchmark.dataset_roots
    if roots is None:
        return [config.data_dir / "datasets"]
    return [config.path(root) for root in roots]


def folder_within_roots(spec: str, roots: list[Path]) -> Path:
    """The folder ``spec`` names, resolved (links followed, ``..`` applied), when it lies
    inside one of ``roots``; else ``BadInput``. Resolved first, so a link or a ``..`` that
    leads out of a root is refused."""
    if not roots:
        raise BadInput(
            "the web page reads the built-in sample set only",
            hint="list the folders it may read in the profile's benchmark.dataset_roots",
        )
    try:
        folder = Path(spec).expanduser().resolve()
        inside = any(folder.is_relative_to(root.resolve()) for root in roots)
    except (OSError, ValueError, RuntimeError) as exc:  # NUL byte, link loop, bad "~user"
        raise BadInput(f"{spec!r} is not a usable folder path: {exc}") from None
    if not inside:
        raise BadInput(
            f"{spec} is not inside a dataset folder the web page may read "
            f"({', '.join(str(root) for root in roots)})",
            hint="put the set in one of them, or add its folder to benchmark.dataset_roots "
            "in the profile",
        )
    return folder


def open_dataset(
    spec: str,
    fmt: Literal["auto", "sroie", "pairs"],
    config: AppConfig,
    within_roots: bool = False,
) -> Dataset:
    """``spec`` "builtin" (the sample set, written under the data folder) or a folder;
    with ``within_roots``, only a folder inside the profile's dataset roots."""
    if spec == "builtin":
        return builtin_dataset(builtin_root(config))
    if within_roots:
        return load_dataset(folder_within_roots(spec, dataset_roots(config)), fmt)
    return load_dataset(Path(spec).expanduser(), fmt)


def reopen_dataset(info: DatasetInfo) -> Dataset:
    """The dataset a stored run read, from where it was then."""
    if info.format == "builtin":
        return builtin_dataset(Path(info.root))
    return load_dataset(Path(info.root), "sroie" if info.format == "sroie" else "pairs")


def check_template(name: str | None, config: AppConfig) -> str | None:
    if name is not None and name not in config.templates:
        known = ", ".join(config.templates) or "none"
        raise BadInput(f"no template '{name}'", hint=f"use one of: {known}")
    return name


def template_for(item: LabelledItem, manifest: Manifest) -> str | None:
    """The run's template, else the one the dataset names for the item, else the default."""
    return manifest.template or item.template or manifest.fallback_template


def _template_specs(items: list[LabelledItem], run: str | None, fallback: str | None, config):
    """The specs of every template the run's items will use; unknown names are refused."""
    names = {run} if run else {item.template or fallback for item in items}
    specs = {}
    for name in sorted(n for n in names if n):
        check_template(name, config)
        specs[name] = config.templates[name].model_dump(mode="json")
    return specs


@dataclass
class RunPlan:
    """A checked request: what the runner will record, read from where, with what."""

    manifest: Manifest
    dataset: Dataset
    engines: list[BenchEngine]
    resumed: bool


def plan_run(
    loaded: LoadedConfig,
    request: BenchRequest,
    engine_factory: EngineFactory,
    user: User = LOCAL_USER,
) -> RunPlan:
    """A new run owned by ``user``, or the resume of the stored run ``request.run_id``
    names (its owner or an admin only: ``PermissionDenied``)."""
    run_id = None if request.run_id is None else store.check_run_id(request.run_id)
    data_dir = loaded.config.data_dir
    if run_id is not None and store.run_exists(data_dir, run_id):
        manifest = store.read_manifest(data_dir, run_id)
        store.check_may_manage(data_dir, manifest, user, "resume")
        return _plan_resume(loaded, request, manifest, engine_factory)
    return _plan_new(loaded, request, engine_factory, user)


def _plan_new(
    loaded: LoadedConfig, request: BenchRequest, engine_factory: EngineFactory, user: User
) -> RunPlan:
    config = loaded.config
    if not request.engines:
        raise BadInput("no engine chosen", hint="pick one or more, e.g. --engine rapidocr")
    run_id = new_run_id() if request.run_id is None else store.check_run_id(request.run_id)
    spec = request.dataset or config.benchmark.dataset
    dataset = open_dataset(spec, request.format, config, request.within_dataset_roots)
    template = check_template(request.template, config)
    engines = [engine_factory(name, config) for name in request.engines]
    limit = request.limit or config.benchmark.limit
    items = dataset.items[:limit] if limit else dataset.items
    now = utc_now_iso()
    manifest = Manifest(
        run_id=run_id,
        name=request.name or f"{dataset.name} × {', '.join(request.engines)}",
        created_at=now,
        started_at=now,
        versions=package_versions(),
        profile_path=str(loaded.source),
        profile_sha256=loaded.sha256,
        engines=[engine_info(engine, config) for engine in engines],
        upload_limits=config.app.upload.model_dump(mode="json"),
        dataset=DatasetInfo(
            name=dataset.name,
            root=str(dataset.root),
            format=dataset.format,
            content_hash=dataset.content_hash,
            items=len(dataset.items),
            problems=dataset.problems,
        ),
        hardware=hardware_info(),
        limit=limit,
        template=template,
        fallback_template=config.ocr.template,
        templates=_template_specs(items, template, config.ocr.template, config),
        items_planned=len(items),
        bootstrap_resamples=config.benchmark.bootstrap_resamples,
        bootstrap_seed=BOOTSTRAP_SEED,
        owner_id=None if user.is_local else user.user_id,
        owner="" if user.is_local else user.label,
    )
    return RunPlan(manifest, dataset, engines, resumed=False)


def _plan_resume(
    loaded: LoadedConfig, request: BenchRequest, manifest: Manifest, engine_factory: EngineFactory
) -> RunPlan:
    config = loaded.config
    _check_request_matches(request, manifest, config)
    dataset = reopen_dataset(manifest.dataset)
    if dataset.content_hash != manifest.dataset.content_hash:
        raise BadInput(
            f"the dataset of run {manifest.run_id} changed since it started "
            f"({manifest.dataset.root})",
            hint="restore the files, or start a new run on the changed set",
        )
    items = dataset.items[: manifest.items_planned]
    templates = _template_specs(items, manifest.template, manifest.fallback_template, config)
    if templates != manifest.templates:
        raise BadInput(
            f"the profile's templates changed since run {manifest.run_id} started",
            hint="resume with the profile the run started with, or start a new run",
        )
    engines = []
    for stored in manifest.engines:
        engine = engine_factory(stored.name, config)
        if engine_info(engine, config) != stored:
            raise BadInput(
                f"engine '{stored.name}' is configured differently than when run "
                f"{manifest.run_id} started",
                hint="resume with the profile the run started with, or start a new run",
            )
        engines.append(engine)
    return RunPlan(manifest, dataset, engines, resumed=True)


def _check_request_matches(request: BenchRequest, manifest: Manifest, config: AppConfig) -> None:
    stored = {
        "engines": [e.name for e in manifest.engines],
        "limit": manifest.limit,
        "template": manifest.template,
    }
    asked = {
        "engines": request.engines or None,
        "limit": request.limit,
        "template": request.template,
    }
    for key, value in asked.items():
        if value is not None and value != stored[key]:
            raise BadInput(
                f"run {manifest.run_id} was started with {key} {stored[key]!r}, not {value!r}",
                hint="leave the option out to resume the run, or omit --run-id for a new run",
            )
    if request.dataset is not None:
        root = (
            builtin_root(config)
            if request.dataset == "builtin"
            else Path(request.dataset).expanduser()
        )
        if root.resolve() != Path(manifest.dataset.root).resolve():
            raise BadInput(
                f"run {manifest.run_id} reads {manifest.dataset.root}, not {request.dataset}",
                hint="leave --dataset out to resume the run",
            )
