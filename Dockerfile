# The project image: every Airflow service of docker-compose.yml runs it (api-server,
# scheduler, dag-processor, Celery workers, `db migrate`), with the DAG and the `dq`
# package the tasks call. Not built where the project is tested (no Docker engine):
# `make lint-docker` lints it and tests/test_containers.py checks what the compose file
# runs it with.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    AIRFLOW_HOME=/opt/airflow \
    PYTHONPATH=/opt/dq

WORKDIR /opt/dq

# The pinned requirements first: this layer is rebuilt only when they change. With
# their bytecode: PYTHONDONTWRITEBYTECODE keeps every task process from caching it,
# so without it each one would compile dbt, GX and pandas from source (10-12 s).
COPY requirements.txt ./
RUN pip install --no-cache-dir uv==0.13.9 \
    && uv venv /opt/venv \
    && uv pip install --no-cache --compile-bytecode -r requirements.txt

COPY . .

# The generated dbt sources (`dq sync`), then the folders the tasks write to, owned by
# the user that runs them; docker-compose.yml mounts shared volumes over them.
RUN python -m dq sync \
    && useradd --create-home --uid 50000 --gid 0 dq \
    && mkdir -p /opt/airflow/logs warehouse production gx/uncommitted \
    && chown -R dq:0 /opt/airflow warehouse production gx/uncommitted

USER 50000

ENTRYPOINT ["airflow"]
CMD ["version"]
