# ChatVLMLLM app image: Python 3.11 slim, non-root, Tesseract (eng, rus), pinned requirements.
#
#   docker build -t chatvlmllm:cpu .                          # CPU torch (default, ~2 GB smaller)
#   docker build --build-arg TORCH_FLAVOR=cuda -t chatvlmllm:cuda .   # CUDA torch from PyPI
#
# docker-compose.yml builds it for you; see README, "Docker and vLLM".
FROM python:3.11-slim

# cpu: torch/torchvision from the PyTorch CPU index (no CUDA libraries in the image);
# cuda: the pins of requirements.txt as PyPI ships them (CUDA-enabled on Linux x86_64).
ARG TORCH_FLAVOR=cpu
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_THREAD_LIMIT=1 \
    HF_HOME=/home/app/.cache/huggingface \
    CHATVLM_CONFIG=/app/config.yaml

# Tesseract with English and Russian; libglib for OpenCV (RapidOCR's image ops).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      tesseract-ocr tesseract-ocr-eng tesseract-ocr-rus libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin app
WORKDIR /app

# Requirements first, so code changes do not reinstall them. The CPU flavour installs
# torch/torchvision at the versions pinned in requirements.txt from the CPU index first;
# the second pip run then finds them satisfied (2.14.1+cpu matches ==2.14.1).
COPY requirements.txt .
RUN set -eu; \
    case "$TORCH_FLAVOR" in \
      cpu) pip install --index-url "$TORCH_CPU_INDEX" \
             $(grep -E '^(torch|torchvision)==' requirements.txt) ;; \
      cuda) ;; \
      *) echo "TORCH_FLAVOR must be cpu or cuda, got '$TORCH_FLAVOR'" >&2; exit 1 ;; \
    esac; \
    pip install -r requirements.txt; \
    pip check

COPY --chown=app:app . .
RUN mkdir -p results cache /home/app/.cache/huggingface \
 && chown -R app:app results cache /home/app/.cache
USER app

# Data the app writes (results, logs, chats) and the result cache live outside the image.
VOLUME ["/app/results", "/app/cache"]
EXPOSE 8501

# No curl in the image: the health check asks Streamlit's health endpoint with Python.
HEALTHCHECK --interval=30s --timeout=5s --start-period=40s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() == b'ok' else 1)"]

# Inside the container the app listens on all interfaces; docker-compose publishes
# the port on 127.0.0.1 only.
CMD ["python", "serve.py", "--server.headless", "true", \
     "--server.address", "0.0.0.0", "--server.port", "8501", \
     "--browser.gatherUsageStats", "false"]
