# The front-end packages the site serves itself (the rich-text editor), from the npm
# registry as package-lock.json pins them; only the installed files go on.
FROM node:20-slim AS front-end
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts --loglevel=error

FROM python:3.11-slim
WORKDIR /app
COPY --from=front-end /build/node_modules node_modules
COPY pyproject.toml README.md ./
COPY kgi kgi
COPY shared shared
COPY services services
COPY templates templates
RUN pip install --no-cache-dir -e . "psycopg[binary]>=3.1"
# An unprivileged user of its own, owning the folders the volumes are mounted on: a new
# named volume takes its owner from the image, so uploads (/data) and the generated
# nginx configuration (/srv/proxy) are writable without root.
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin kgi \
    && mkdir -p /data /srv/proxy \
    && chown kgi:kgi /data /srv/proxy
ENV KGI_ENV=production KGI_DATA_DIR=/data
USER kgi
EXPOSE 8000
CMD ["kgi", "serve", "portal", "--port", "8000"]
