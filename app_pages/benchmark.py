"""Benchmarks: run engines over labelled documents, keep every run, compare runs."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

import ui
from models.registry import availabilities
from utils.auth import Action
from utils.auth.permissions import may_manage_run
from utils.bench import views
from utils.bench.compare import compare_runs
from utils.bench.engines import bench_engine_names
from utils.bench.plan import BenchRequest, dataset_roots, reopen_dataset
from utils.bench.runner import run_benchmark
from utils.bench.runs import RunDetail, open_run, rescore
from utils.bench.store import RunListing, delete_run, list_bench_runs, rename_run
from utils.documents.document import load_document
from utils.errors import AppError
from utils.ocr.drawing import draw_boxes
from utils.ocr.pipeline import document_limits
from utils.spreadsheet import frame_csv
from utils.storage import new_run_id

loaded = ui.profile()
config = loaded.config
data_dir = config.data_dir
user = ui.current_user()
st.title("📊 Benchmarks")
_RUN_IN_PROGRESS = "bench_run_in_progress"
_RESUMED = "bench_resumed"
_RESCORED = "bench_rescored"
_WORD_F1 = views.ACCURACY_METRICS.index("word_f1")  # the metrics offered first


@st.cache_data(ttl=60, show_spinner=False)
def _availability(profile_sha: str) -> dict[str, str]:
    """Why each unavailable engine of the profile cannot run."""
    verdicts = availabilities(config, "ocr")  # the engines a run can use
    return {name: v.detail for name, v in verdicts.items() if not v.available}


def run_labels(table: pd.DataFrame) -> dict[str, str]:
    """Run id -> what a reader picks it by: its name and when it started."""
    return dict(zip(table["run"], table["name"] + " · " + table["created"], strict=False))


def start_form() -> None:
    # Open on a first visit with no runs yet. Decided once per session: were it
    # recomputed, the first finished run would fold the form shut on the next click.
    start_open = st.session_state.setdefault("bench_start_open", not list_bench_runs(data_dir))
    with st.expander("▶️ Start a run", expanded=start_open):
        unavailable = _availability(loaded.sha256)
        usable = [n for n in bench_engine_names(config) if n not in unavailable]
        folder = dataset_folder_input()
        fmt = st.selectbox("Format", ["auto", "sroie", "pairs"], disabled=not folder)
        engines = st.multiselect("Engines and models", usable, default=usable[:1])
        unavailable_engines(unavailable)
        limit = st.number_input("Limit (0 = all items)", 0, 100_000, 0)
        name = st.text_input("Run name (optional)")
        if st.button(
            "Start",
            type="primary",
            disabled=not engines or folder is None,
        ):
            request = BenchRequest(
                dataset=folder or "builtin",
                format=fmt,
                engines=engines,
                limit=limit or None,
                name=name or None,
                within_dataset_roots=True,
            )
            if done := execute(request):
                st.success(done)


def unavailable_engines(unavailable: dict[str, str]) -> None:
    """One folded line, as on the OCR page: the reasons are there for whoever asks,
    without pushing Start below a screenful of them."""
    if not unavailable:
        return
    count = len(unavailable)
    with st.expander(f"{count} engine{'s' if count > 1 else ''} unavailable — why"):
        for name, detail in unavailable.items():
            st.caption(f"**{ui.untrusted(name)}**: {ui.untrusted(detail)}")


def dataset_folder_input() -> str | None:
    """The folder to read: empty for the built-in set, None while none is typed.

    Only folders inside the profile's dataset roots can be read from here (the service
    checks it); the page says which they are.
    """
    roots = dataset_roots(config)
    if not roots:
        st.caption(
            "Dataset: the built-in sample set. Reading folders on the server is off here: "
            "list the folders this page may read "
            "under `benchmark.dataset_roots` in the profile (or run `cli.py bench run "
            "--dataset FOLDER`)."
        )
        return ""
    source = st.radio("Dataset", ["Built-in sample set", "Folder on the server"], horizontal=True)
    if source == "Built-in sample set":
        return ""
    st.caption(
        "Folders inside "
        + ", ".join(ui.untrusted(root) for root in roots)
        + " only (the profile's `benchmark.dataset_roots`)."
    )
    folder = st.text_input("Folder", placeholder=str(roots[0] / "receipts"))
    return folder or None


def execute(request: BenchRequest) -> str | None:
    """Run with a progress bar. Any click reruns the page, which stops the run at its next
    progress report: everything recorded so far is kept and the run can be resumed.

    The run's id is noted in the session until the run returns; a note still there on the
    next script run means a click stopped it (see ``stopped_run``). Returns what the run
    did, or None when it could not run (the error is shown)."""
    request = request.model_copy(update={"run_id": request.run_id or new_run_id()})
    bar = st.progress(0.0, text="Starting…")
    cancel_slot = st.empty()
    cancel_slot.button("⏹️ Cancel (the run can be resumed)")
    st.session_state[_RUN_IN_PROGRESS] = request.run_id

    def progress(done: int, total: int, failures: int, left: float | None) -> None:
        eta = f", ~{left:.0f} s left" if left is not None else ""
        bar.progress(
            done / total if total else 1.0, text=f"{done}/{total} items, {failures} failed{eta}"
        )

    try:
        outcome = run_benchmark(loaded, request, progress, user=user)
    except AppError as exc:
        outcome = None
        ui.show_error(exc)
    st.session_state.pop(_RUN_IN_PROGRESS, None)
    cancel_slot.empty()  # nothing left to cancel
    if outcome is None:
        return None
    return f"Run {outcome.run_id}: {outcome.status}, {outcome.recorded_now} items recorded now."


def stopped_run(runs: list[RunListing], run_id: str | None) -> str | None:
    """Says which run the last click stopped and returns its id, if one did."""
    listing = next((r for r in runs if r.run_id == run_id), None)
    if listing is None or listing.status not in ("cancelled", "interrupted"):
        return None
    st.warning(
        f"⏹️ Run “{ui.untrusted(listing.name)}” stopped with {listing.items_recorded} of "
        f"{listing.items_total} items recorded. Resume it under “Rename, delete or resume a "
        "run” below: the items recorded are kept."
    )
    return listing.run_id


def runs_section(stopped_id: str | None) -> pd.DataFrame:
    runs = list_bench_runs(data_dir)
    table = views.runs_table(runs)
    st.subheader("Runs")
    focus = stopped_run(runs, stopped_id)
    if table.empty:
        st.info("No runs yet. Start one with the built-in sample set: nothing needs downloading.")
        return table
    cols = st.columns(3)
    engines = cols[0].multiselect("Engine", sorted(table["engine"].unique()))
    datasets = cols[1].multiselect("Dataset", sorted(table["dataset"].unique()))
    since = cols[2].date_input("Since", value=None)
    shown = views.filter_runs(table, engines, datasets, since.isoformat() if since else None)
    ui.table(shown)
    st.caption(views.LINE_CER_NOTE)
    st.download_button("Runs as CSV", frame_csv(shown), "runs.csv", "text/csv")
    manage_runs(runs, focus)
    return table


def manage_runs(runs: list[RunListing], focus: str | None) -> None:
    """Open on ``focus`` (a run just stopped), whose Resume is then one click away. Only
    the runs this user may manage (their own; an admin: all) are offered."""
    mine = [r for r in runs if may_manage_run(user, r.owner_id)]
    if not mine:
        return
    names = {r.run_id: f"{r.name} ({r.status}, {r.created_at[:16]})" for r in mine}
    with st.expander("Rename, delete or resume a run", expanded=focus in names):
        index = list(names).index(focus) if focus in names else 0
        chosen = st.selectbox("Run", list(names), index=index, format_func=names.get)
        new_name = st.text_input("New name")
        if st.button("Rename") and new_name.strip():
            act(lambda: rename_run(data_dir, chosen, new_name.strip(), user=user))
        status = next(r.status for r in mine if r.run_id == chosen)
        if status in ("cancelled", "interrupted") and st.button("Resume"):
            resume(chosen)
        if st.checkbox("I want to delete this run") and st.button(
            "Delete for good", type="primary"
        ):
            act(lambda: delete_run(data_dir, chosen, user=user))


def act(change) -> None:
    """Run a change to a stored run; show a refusal, else show the new state."""
    try:
        change()
    except AppError as exc:
        ui.show_error(exc)
    else:
        st.rerun()


def resume(run_id: str) -> None:
    if done := execute(BenchRequest(run_id=run_id)):
        # Said on the next script run, whose runs table above is then up to date.
        st.session_state[_RESUMED] = done
        st.rerun()


def leaderboard_section(table: pd.DataFrame) -> None:
    if table.empty:
        return
    st.subheader("Leaderboard per dataset")
    metric = st.selectbox("Metric", views.ACCURACY_METRICS, index=_WORD_F1)
    board = views.leaderboard(table, metric)
    ui.table(board)
    if metric == "line_cer":
        st.caption(views.LINE_CER_NOTE)
    st.download_button("Leaderboard as CSV", frame_csv(board), "leaderboard.csv", "text/csv")


def compare_section(table: pd.DataFrame) -> None:
    if table.empty:
        return
    st.subheader("Compare runs and engines")
    labels = run_labels(table)
    chosen = st.multiselect(
        "Runs (the first is the baseline)", list(labels), format_func=labels.get
    )
    if not chosen:
        st.caption("Pick a run with two or more engines, or two or more runs.")
        return
    comparison = compare_runs(data_dir, chosen)
    if len(comparison.columns) < 2:
        st.caption("That run has one engine: pick another run to compare it with.")
        return
    compared = views.comparison_table(comparison)
    ui.table(compared)
    st.caption(views.LINE_CER_NOTE)
    st.download_button("Comparison as CSV", frame_csv(compared), "comparison.csv", "text/csv")
    for note in comparison.notes:
        st.caption(ui.untrusted(note))
    details = [open_run(data_dir, run_id) for run_id in chosen]
    charts(comparison, details)


def charts(comparison, details) -> None:
    accuracy = st.selectbox(
        "Accuracy axis", views.ACCURACY_METRICS, index=_WORD_F1, key="scatter_metric"
    )
    points = views.scatter_points(comparison, accuracy)
    if not points.empty:
        st.altair_chart(
            alt.Chart(points)
            .mark_circle(size=120)
            .encode(x="seconds (p50):Q", y=f"{accuracy}:Q", color="series:N", tooltip=list(points)),
            width="stretch",
        )
    fields = views.field_accuracy_table(details)
    if not fields.empty:
        st.altair_chart(
            alt.Chart(fields)
            .mark_bar()
            .encode(x="field:N", y="accuracy:Q", color="series:N", xOffset="series:N"),
            width="stretch",
        )
    latency = views.latency_table(details)
    if not latency.empty:
        st.altair_chart(
            alt.Chart(latency).mark_boxplot().encode(x="series:N", y="seconds:Q"),
            width="stretch",
        )


def run_section(table: pd.DataFrame) -> None:
    if table.empty:
        return
    st.subheader("One run")
    labels = run_labels(table)
    run_id = st.selectbox("Run", list(labels), format_func=labels.get, key="drill_run")
    detail = open_run(data_dir, run_id)
    run_numbers(detail)
    drill_down(detail)


def run_numbers(detail: RunDetail) -> None:
    """Every number of one run per engine, what it ran with, and a re-score."""
    summary, run_id = detail.summary, detail.manifest.run_id
    st.caption(
        f"{summary.items_recorded} of {summary.items_total} items recorded; intervals are "
        f"{summary.confidence:.0%} bootstrap intervals over the items."
    )
    numbers = views.run_detail_table(summary)
    ui.table(numbers)
    st.download_button("Run numbers as CSV", frame_csv(numbers), f"run-{run_id}.csv", "text/csv")
    with st.expander("🧾 Manifest: versions, profile, dataset, hardware"):
        ui.table(views.manifest_table(detail.manifest))
    if rescored := st.session_state.pop(_RESCORED, None):
        st.success(rescored)
    if not may_manage_run(user, detail.manifest.owner_id):
        return
    if st.button("🔁 Re-score", help="Score the saved predictions again; no model runs."):
        rescore_run(run_id)


def rescore_run(run_id: str) -> None:
    try:
        outcome = rescore(data_dir, run_id, user=user)
    except AppError as exc:
        ui.show_error(exc)
        return
    # Said on the next script run, whose tables above then show the new scores.
    st.session_state[_RESCORED] = (
        f"Re-scored {outcome.records} records: {outcome.changed} changed, "
        f"{outcome.dropped_lines} unreadable lines dropped."
    )
    st.rerun()


def drill_down(detail: RunDetail) -> None:
    st.subheader("One item")
    run_id = detail.manifest.run_id
    items = views.items_table(detail)
    ui.table(items)
    st.download_button("Items as CSV", frame_csv(items), f"items-{run_id}.csv", "text/csv")
    keys = [f"{r.engine} · {r.item_id}" for r in detail.items]
    if not keys:
        return
    record = detail.items[keys.index(st.selectbox("Item", keys))]
    if record.metrics:
        ui.table([{m: round(v, 4) for m, v in record.metrics.items()}])
    else:  # the message may quote the dataset's own files: text, never Markdown
        st.text(record.message or "not scored")
    show_item_image(detail, record)
    if record.truth_text is not None:
        ui.table(views.word_diff(record.truth_text, record.prediction))
    if record.truth_fields:
        ui.table(
            [
                {
                    "field": f,
                    "truth": t,
                    "prediction": record.predicted_fields.get(f),
                    "correct": record.fields_correct.get(f),
                }
                for f, t in record.truth_fields.items()
            ]
        )


def show_item_image(detail, record) -> None:
    try:
        dataset = reopen_dataset(detail.manifest.dataset)
        item = next(i for i in dataset.items if i.item_id == record.item_id)
        document = load_document(item.image.read_bytes(), item.image.name, document_limits(config))
        page = next(document.pages())
    except (AppError, StopIteration, OSError):
        st.caption("The item's image is no longer where the run read it.")
        return
    st.image(draw_boxes(page.image, record.boxes, scale=page.scale), width="stretch")


stopped_id = st.session_state.pop(_RUN_IN_PROGRESS, None)
if resumed := st.session_state.pop(_RESUMED, None):
    st.success(resumed)
if ui.allowed(Action.RUN_BENCHMARK):
    start_form()
runs_table = runs_section(stopped_id)
leaderboard_section(runs_table)
compare_section(runs_table)
run_section(runs_table)
