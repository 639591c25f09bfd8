# spinr server / proxy / client image. CPU by default: constraints.txt pins the CPU torch wheel.
# For NVIDIA GPUs build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 and run the
# compose "gpu" profile (see docker-compose.yml).
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY codec ./codec
COPY netsim ./netsim
COPY streaming ./streaming
COPY server ./server
COPY client ./client
RUN pip install --extra-index-url "$TORCH_INDEX" -c constraints.txt ".[train,server]" \
    && useradd --create-home --uid 1000 spinr \
    && mkdir -p /data && chown spinr /data
USER spinr

VOLUME ["/data"]
EXPOSE 8000 8001
ENTRYPOINT ["spinr"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--data-dir", "/data"]
