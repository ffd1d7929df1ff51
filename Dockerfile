# Production image: one image for every process (api, worker, beat, migrate); the
# command chooses the process. Built from the repository root: `docker build .`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN groupadd --system --gid 10001 recon \
    && useradd --system --uid 10001 --gid recon --create-home --home-dir /home/recon \
        --shell /usr/sbin/nologin recon

# The source stays root-owned and read-only for the service user; the installed package
# (not this tree) is what runs. pip builds in-tree, so its build leftovers are removed.
WORKDIR /opt/recon
COPY . .
RUN pip install . \
    && rm -rf build ./*.egg-info

USER recon
# A writable working directory that is not the source tree: celery beat writes its
# schedule file to the working directory, and `python -m ...` would otherwise import
# the source tree instead of the installed package.
WORKDIR /home/recon

EXPOSE 8000
CMD ["recon", "serve", "--port", "8000"]
