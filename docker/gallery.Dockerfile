# Gallery: the web app people use (HTTP API, WebSocket, the page). No TensorFlow: a CPU host is enough.
# Built from the repository root: docker build -f docker/gallery.Dockerfile .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY deep_painting deep_painting
COPY painting painting
COPY pycasso pycasso
COPY studio studio
COPY gallery gallery
COPY httpapi httpapi
COPY frontend frontend
# The services only: the engine extra (TensorFlow) stays out of this image.
RUN pip install .

RUN useradd --system --uid 10001 --home-dir /data painter && mkdir -p /data && chown painter /data
USER painter
ENV GALLERY_DATA_DIR=/data GALLERY_FRONTEND_DIR=/app/frontend
VOLUME /data
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4).status != 200)"]

# GALLERY_STUDIO_URL and GALLERY_STUDIO_TOKEN say where Studio is and how to call it.
CMD ["deep-painting", "gallery", "--host", "0.0.0.0", "--port", "8000"]
