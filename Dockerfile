# spinr: one image for the server, the netsim proxy and the command-line client: every package of the
# project and every extra (`.[all]`: train, server, client, experiments; and `ray`, for the compose
# profile whose server trains on a Ray cluster), so each `spinr` command works in it. CPU by default: constraints.txt pins the CPU torch wheel. For NVIDIA GPUs see
# docker-compose.gpu.yml (it builds with TORCH_INDEX=https://download.pytorch.org/whl/cu124).
# tests/test_compose.py checks that what the services import is copied here and that the extras
# installed bring what they need.
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
COPY experiments ./experiments
COPY benchmarks ./benchmarks
COPY server ./server
COPY client ./client
RUN pip install --extra-index-url "$TORCH_INDEX" -c constraints.txt ".[all,ray]" \
    && mkdir -p /app/samples \
    && python -c "from skimage import data; from PIL import Image; Image.fromarray(data.astronaut()[::4, ::4]).save('/app/samples/astronaut.png')" \
    && useradd --create-home --uid 1000 spinr \
    && mkdir -p /data /out && chown spinr /data /out
USER spinr

VOLUME ["/data"]
EXPOSE 8000 8001
ENTRYPOINT ["spinr"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--data-dir", "/data"]
