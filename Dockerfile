FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY kgi kgi
COPY shared shared
COPY services services
COPY templates templates
RUN pip install --no-cache-dir -e . "psycopg[binary]>=3.1"
ENV KGI_ENV=production KGI_DATA_DIR=/data
USER nobody
EXPOSE 8000
CMD ["kgi", "serve", "portal"]
