"""A real OCR engine for benchmark tests: a catalog entry served by the fake OpenAI server.

A benchmark run in another process (`cli.py bench run`) cannot be handed a fake
engine object, and the Benchmarks page only offers the profile's engines; this
entry is read through the app's OCR pipeline like any served VLM, while the
answers come from ``testkit.fake_openai_server`` running in the test's process
(the request described back by default, or scripted replies).
"""

from __future__ import annotations


def served_ocr_yaml(
    base_url: str,
    model_id: str = "served_ocr",
    served_name: str = "fake-vlm",
    concurrency: int = 1,
    timeout_s: float = 30,
) -> str:
    """Profile YAML (``endpoints:`` and ``models:``) for an OCR-capable model ``model_id``.

    ``concurrency`` is how many benchmark items the runner keeps in flight against it;
    with 1 the requests arrive in dataset order, so scripted replies line up with items.
    """
    return (
        "endpoints:\n"
        "  fake_ocr:\n"
        f"    base_url: {base_url}\n"
        f"    timeout_s: {timeout_s}\n"
        "    max_retries: 0\n"
        f"    concurrency: {concurrency}\n"
        "models:\n"
        f"  {model_id}:\n"
        "    display_name: Served fake OCR\n"
        "    backend: openai\n"
        "    task: ocr\n"
        "    endpoint: fake_ocr\n"
        f"    served_name: {served_name}\n"
    )
