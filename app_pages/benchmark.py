"""Benchmarks: run engines over labelled documents, keep every run, compare runs."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

import ui
from models.registry import availabilities
from utils.bench import views
from utils.bench.compare import compare_runs
from utils.bench.engines import bench_engine_names
from utils.bench.plan import BenchRequest, dataset_roots, reopen_dataset
from utils.bench.runner import run_benchmark
from utils.bench.runs import open_run
from utils.bench.store import delete_run, list_bench_runs, rename_run
from utils.documents.document import load_document
from utils.errors import AppError
from utils.ocr.drawing import draw_boxes
from utils.ocr.pipeline import document_limits
from utils.spreadsheet import frame_csv

loaded = ui.profile()
config = loaded.config
data_dir = config.data_dir
st.title("📊 Benchmarks")


@st.cache_data(ttl=60, show_spinner=False)
def _availability(profile_sha: str) -> dict[str, str]:
    """Why each unavailable engine of the profile cannot run."""
    verdicts = availabilities(config, "ocr")  # the engines a run can use
    return {name: v.detail for name, v in verdicts.items() if not v.available}


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
        if unavailable:
            st.caption(
                "Unavailable: "
                + "; ".join(f"{n} ({ui.untrusted(d)})" for n, d in unavailable.items())
            )
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
            execute(request)


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


def execute(request: BenchRequest) -> None:
    """Run with a progress bar. Any click reruns the page, which interrupts the run:
    everything recorded so far is kept and the run can be resumed."""
    bar = st.progress(0.0, text="Starting…")
    st.button("⏹️ Cancel (the run can be resumed)")

    def progress(done: int, total: int, failures: int, left: float | None) -> None:
        eta = f", ~{left:.0f} s left" if left is not None else ""
        bar.progress(
            done / total if total else 1.0, text=f"{done}/{total} items, {failures} failed{eta}"
        )

    try:
        outcome = run_benchmark(loaded, request, progress)
    except AppError as exc:
        ui.show_error(exc)
        return
    st.success(
        f"Run {outcome.run_id}: {outcome.status}, {outcome.recorded_now} items recorded now."
    )


def runs_section() -> pd.DataFrame:
    runs = list_bench_runs(data_dir)
    table = views.runs_table(runs)
    st.subheader("Runs")
    if table.empty:
        st.info("No runs yet. Start one with the built-in sample set: nothing needs downloading.")
        return table
    cols = st.columns(3)
    engines = cols[0].multiselect("Engine", sorted(table["engine"].unique()))
    datasets = cols[1].multiselect("Dataset", sorted(table["dataset"].unique()))
    since = cols[2].date_input("Since", value=None)
    shown = views.filter_runs(table, engines, datasets, since.isoformat() if since else None)
    st.dataframe(shown, hide_index=True)
    st.download_button("Runs as CSV", frame_csv(shown), "runs.csv", "text/csv")
    manage_runs(runs)
    return table


def manage_runs(runs) -> None:
    names = {r.run_id: f"{r.name} ({r.status}, {r.created_at[:16]})" for r in runs}
    with st.expander("Rename, delete or resume a run"):
        chosen = st.selectbox("Run", list(names), format_func=names.get)
        new_name = st.text_input("New name")
        if st.button("Rename") and new_name.strip():
            rename_run(data_dir, chosen, new_name.strip())
            st.rerun()
        status = next(r.status for r in runs if r.run_id == chosen)
        if status in ("cancelled", "interrupted") and st.button("Resume"):
            execute(BenchRequest(run_id=chosen))
        if st.checkbox("I want to delete this run") and st.button(
            "Delete for good", type="primary"
        ):
            delete_run(data_dir, chosen)
            st.rerun()


def leaderboard_section(table: pd.DataFrame) -> None:
    if table.empty:
        return
    st.subheader("Leaderboard per dataset")
    metric = st.selectbox("Metric", views.ACCURACY_METRICS, index=2)
    board = views.leaderboard(table, metric)
    st.dataframe(board, hide_index=True)
    st.download_button("Leaderboard as CSV", frame_csv(board), "leaderboard.csv", "text/csv")


def compare_section(table: pd.DataFrame) -> None:
    if table.empty:
        return
    st.subheader("Compare runs")
    labels = dict(zip(table["run"], table["name"] + " · " + table["created"], strict=False))
    chosen = st.multiselect(
        "Runs (the first is the baseline)", list(labels), format_func=labels.get
    )
    if len(chosen) < 2:
        st.caption("Pick two or more runs.")
        return
    comparison = compare_runs(data_dir, chosen)
    compared = views.comparison_table(comparison)
    st.dataframe(compared, hide_index=True)
    st.download_button("Comparison as CSV", frame_csv(compared), "comparison.csv", "text/csv")
    for note in comparison.notes:
        st.caption(ui.untrusted(note))
    details = [open_run(data_dir, run_id) for run_id in chosen]
    charts(comparison, details)


def charts(comparison, details) -> None:
    accuracy = st.selectbox("Accuracy axis", views.ACCURACY_METRICS, index=2, key="scatter_metric")
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


def drill_down(table: pd.DataFrame) -> None:
    if table.empty:
        return
    st.subheader("One item")
    runs = list(dict.fromkeys(table["run"]))
    run_id = st.selectbox("Run", runs, key="drill_run")
    detail = open_run(data_dir, run_id)
    items = views.items_table(detail)
    st.dataframe(items, hide_index=True)
    st.download_button("Items as CSV", frame_csv(items), f"items-{run_id}.csv", "text/csv")
    keys = [f"{r.engine} · {r.item_id}" for r in detail.items]
    if not keys:
        return
    record = detail.items[keys.index(st.selectbox("Item", keys))]
    if record.metrics:
        st.dataframe([{m: round(v, 4) for m, v in record.metrics.items()}], hide_index=True)
    else:  # the message may quote the dataset's own files: text, never Markdown
        st.text(record.message or "not scored")
    show_item_image(detail, record)
    if record.truth_text is not None:
        st.dataframe(views.word_diff(record.truth_text, record.prediction), hide_index=True)
    if record.truth_fields:
        st.dataframe(
            [
                {
                    "field": f,
                    "truth": t,
                    "prediction": record.predicted_fields.get(f),
                    "correct": record.fields_correct.get(f),
                }
                for f, t in record.truth_fields.items()
            ],
            hide_index=True,
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


start_form()
runs_table = runs_section()
leaderboard_section(runs_table)
compare_section(runs_table)
drill_down(runs_table)
