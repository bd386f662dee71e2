"""Live metrics of the model servers the profile names, their history, and alerts.

``scrape`` fetches a server's Prometheus ``/metrics`` text, ``vllm`` reads vLLM's
metrics out of it with ``prometheus_client``'s parser, ``rates`` turns two samples
into tokens/s and latency percentiles, ``history`` keeps samples in rotated JSONL
files under ``<data_dir>/monitor/``, and ``poller`` samples every server on a timer,
once per data folder however many app processes share it.
"""
