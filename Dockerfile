# ChatVLMLLM app image: Python 3.11 slim, non-root, Tesseract (eng, rus).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    OMP_THREAD_LIMIT=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng tesseract-ocr-rus \
      libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 app
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=app:app . .
RUN mkdir -p results cache && chown app:app results cache
USER app

VOLUME ["/app/results", "/app/cache"]
EXPOSE 8501

# No curl in the image: the health check asks Streamlit with Python.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() == b'ok' else 1)"

# Inside the container the app listens on all interfaces; docker-compose
# publishes the port on 127.0.0.1 only.
CMD ["python", "-m", "streamlit", "run", "app.py", "--server.headless", "true", \
     "--server.address", "0.0.0.0", "--server.port", "8501", \
     "--browser.gatherUsageStats", "false"]
